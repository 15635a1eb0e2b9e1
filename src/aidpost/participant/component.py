"""The participant component's composition."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter

from aidpost.auth.component import REALM_HISTORY, passwords_from
from aidpost.core.bus import Event, Subscription, stop_all
from aidpost.core.component import database_check
from aidpost.core.http import Check
from aidpost.core.migrate import upgrade
from aidpost.core.outbox import OutboxRelay
from aidpost.core.tokens import sign_out_subscription
from aidpost.participant import readmodel
from aidpost.participant.api import router
from aidpost.participant.help import MESSENGER_STREAM, HelpService
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
        self.help = HelpService(self.db, rt.clock, self.relay.kick)
        self.service = ParticipantService(
            self.db, rt.clock, passwords_from(rt), self.help, self.relay.kick
        )
        self.read_model = Subscription(
            rt.bus, readmodel.CHANGES_STREAM, "participant-read-model", self._on_change
        )
        self.chats = Subscription(
            rt.bus, MESSENGER_STREAM, "participant-help", self.help.on_messenger_event
        )
        self.sign_outs = sign_out_subscription(
            rt.bus, "participant", "participant-sign-outs", self.service.note_sign_out
        )

    async def _on_change(self, event: Event) -> None:
        await readmodel.apply_change(self.db, event)

    def routers(self) -> Sequence[APIRouter]:
        return (router,)

    def state(self) -> dict[str, Any]:
        return {
            "participant": self.service,
            "participant_relay": self.relay,
            "participant_api_key": self.rt.settings.participant.api_key,
        }

    def checks(self) -> Sequence[Check]:
        return [database_check("participant_db", self.db, HISTORY)]

    async def start(self) -> None:
        await upgrade(self.db, HISTORY)
        await upgrade(self.db, REALM_HISTORY)
        self.relay.start_background()
        for sub in (self.sign_outs, self.read_model, self.chats):
            sub.start_background()

    async def stop(self) -> None:
        await stop_all((self.chats, self.read_model, self.sign_outs))
        await self.relay.stop()
