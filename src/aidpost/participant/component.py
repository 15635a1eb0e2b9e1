"""The participant component's composition."""

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
from aidpost.participant.api import router
from aidpost.participant.models import outbox
from aidpost.participant.service import ParticipantService
from aidpost.runtime import Runtime

HISTORY = "participant"


class ParticipantComponent:
    name = "participant"

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.db = rt.database(rt.settings.participant_db)
        self.relay = OutboxRelay(self.db, outbox, rt.bus, interval=0.5)
        self.service = ParticipantService(self.db, rt.clock, passwords_from(rt), self.relay.kick)
        self.sign_outs = sign_out_subscription(
            rt.bus, "participant", "participant-sign-outs", self.service.note_sign_out
        )

    def routers(self) -> Sequence[APIRouter]:
        return (router,)

    def state(self) -> dict[str, Any]:
        return {"participant": self.service}

    def checks(self) -> Sequence[Check]:
        return [database_check("participant_db", self.db, HISTORY)]

    async def start(self) -> None:
        await upgrade(self.db, HISTORY)
        await upgrade(self.db, REALM_HISTORY)
        self.relay.start_background()
        self.sign_outs.start_background()

    async def stop(self) -> None:
        await self.sign_outs.stop()
        await self.relay.stop()
