"""The organizer component's composition."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter

from aidpost.auth.component import REALM_HISTORY, passwords_from
from aidpost.core.component import database_check
from aidpost.core.http import Check
from aidpost.core.migrate import upgrade
from aidpost.core.outbox import OutboxRelay
from aidpost.core.tokens import sign_out_subscription
from aidpost.organizer.api import router
from aidpost.organizer.models import outbox
from aidpost.organizer.service import OrganizerService
from aidpost.runtime import Runtime

HISTORY = "organizer"


class OrganizerComponent:
    name = "organizer"

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.db = rt.database(rt.settings.organizer_db)
        self.relay = OutboxRelay(self.db, outbox, rt.bus, interval=0.5)
        self.service = OrganizerService(self.db, rt.clock, passwords_from(rt), self.relay.kick)
        self.sign_outs = sign_out_subscription(
            rt.bus, "organizer", "organizer-sign-outs", self.service.note_sign_out
        )

    def routers(self) -> Sequence[APIRouter]:
        return (router,)

    def state(self) -> dict[str, Any]:
        return {
            "organizer": self.service,
            "organizer_relay": self.relay,
            "organizer_api_key": self.rt.settings.organizer.api_key,
        }

    def checks(self) -> Sequence[Check]:
        return [database_check("organizer_db", self.db, HISTORY)]

    async def start(self) -> None:
        await upgrade(self.db, HISTORY)
        await upgrade(self.db, REALM_HISTORY)
        s = self.rt.settings.auth
        await self.service.ensure_superadmin(s.superadmin_email, s.superadmin_password)
        self.relay.start_background()
        self.sign_outs.start_background()

    async def stop(self) -> None:
        await self.sign_outs.stop()
        await self.relay.stop()
