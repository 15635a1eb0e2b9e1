"""The status component: watches aidpost's own components and the servers it uses, keeps
uptime history, publishes incidents and maintenance, and notifies subscribers (through the
mailer) and webhooks. Any number of replicas serve the page; one prober runs at a time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter
from sqlalchemy.exc import IntegrityError

from aidpost.core.bus import Subscription
from aidpost.core.component import database_check
from aidpost.core.http import Check
from aidpost.core.migrate import upgrade
from aidpost.core.outbox import OutboxRelay
from aidpost.runtime import Runtime
from aidpost.status import config
from aidpost.status.api import admin, public
from aidpost.status.models import outbox
from aidpost.status.pages import router as pages
from aidpost.status.prober import Prober
from aidpost.status.service import StatusService
from aidpost.status.webhooks import WebhookSender

HISTORY = "status"


class StatusComponent:
    name = "status"

    def __init__(self, rt: Runtime) -> None:
        s = rt.settings.status
        self.rt = rt
        # The components that run in this process (set by the app builder): what the
        # derived configuration watches.
        self.served: tuple[str, ...] = ("status",)
        self.db = rt.database(rt.settings.status_db)
        self.relay = OutboxRelay(self.db, outbox, rt.bus, interval=0.5)
        self.service = StatusService(
            self.db,
            rt.clock,
            public_url=s.public_url or config.own_base(rt.settings),
            page_name=s.page_name,
            on_commit=self.relay.kick,
        )
        self.webhooks = WebhookSender(self.db, rt.clock)
        self.prober = Prober(
            self.service,
            rt.bus,
            rt.instance,
            tick_seconds=s.tick_seconds,
            retention_days=s.retention_days,
            webhooks=self.webhooks,
        )
        self.admins = Subscription(
            rt.bus, "organizer.changes", "status-admins", self.service.on_organizer_change
        )

    def routers(self) -> Sequence[APIRouter]:
        return (public, admin, pages)

    def state(self) -> dict[str, Any]:
        return {"status": self.service, "status_prober": self.prober}

    def checks(self) -> Sequence[Check]:
        return [database_check("status_db", self.db, HISTORY)]

    async def start(self) -> None:
        await upgrade(self.db, HISTORY)
        groups = config.configured(self.rt.settings, self.served)
        try:
            await self.service.sync(groups)
        except IntegrityError:  # another replica synchronised at the same moment
            await self.service.sync(groups)
        self.relay.start_background()
        self.admins.start_background()
        if self.rt.settings.status.prober:
            self.prober.start_background()

    async def stop(self) -> None:
        await self.prober.stop()
        await self.admins.stop()
        await self.webhooks.close()
        await self.relay.stop()
