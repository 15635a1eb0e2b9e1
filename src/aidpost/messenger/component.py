"""The messenger component: queue and command consumers, and a WebSocket gateway."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from fastapi import APIRouter, WebSocket

from aidpost.core.bus import Subscription, stop_all
from aidpost.core.component import database_check
from aidpost.core.directory import Directory, HttpDirectory, LocalDirectory
from aidpost.core.http import Check
from aidpost.core.migrate import upgrade
from aidpost.core.outbox import OutboxRelay
from aidpost.core.shards import ShardedConsumer
from aidpost.messenger.api import CONNECT_PATH, router
from aidpost.messenger.gateway import Gateway
from aidpost.messenger.models import outbox
from aidpost.messenger.service import (
    COMMANDS_GROUP,
    COMMANDS_STREAM,
    HELP_STREAM,
    ORGANIZER_STREAM,
    MessengerService,
)
from aidpost.runtime import Runtime

HISTORY = "messenger"


class MessengerComponent:
    name = "messenger"

    def __init__(self, rt: Runtime, directory: Directory | None = None) -> None:
        s = rt.settings
        self.rt = rt
        self.db = rt.database(s.messenger_db)
        self.relay = OutboxRelay(self.db, outbox, rt.bus, interval=0.5)
        self.directory = directory or self._directory()
        self.service = MessengerService(
            self.db,
            rt.clock,
            rt.hub,
            self.directory,
            max_message_chars=s.messenger.max_message_chars,
            on_commit=self.relay.kick,
        )
        self.gateway = Gateway(
            rt.instance, self.service, rt.bus, rt.hub, lambda: rt.verifier, s.messenger
        )
        self.subscriptions = [
            Subscription(
                rt.bus, ORGANIZER_STREAM, "messenger-read-model", self.service.on_organizer_change
            ),
            Subscription(
                rt.bus,
                HELP_STREAM,
                "messenger-queue",
                self.service.on_help_event,
                batch_handler=self.service.on_help_events,
            ),
        ]
        self.commands = ShardedConsumer(
            rt.bus,
            COMMANDS_STREAM,
            COMMANDS_GROUP,
            s.messenger.command_shards,
            self.service.handle_commands,
            consumer=rt.instance,
            batch=s.messenger.consumer_batch,
            block_ms=100,
            lease_ms=s.messenger.consumer_lease_ms,
            linger_ms=s.messenger.consumer_linger_ms,
        )

    def _directory(self) -> Directory:
        s = self.rt.settings
        if s.messenger.participant_url:
            return HttpDirectory(s.messenger.participant_url, s.participant.api_key)
        # One process: ask the participant component's service directly, once it exists.
        component = self

        async def lookup(ids: list[int]) -> dict[str, Any]:
            service = getattr(component, "participants", None)
            if service is None:
                return {}
            found: dict[str, Any] = await service.users(ids)
            return found

        return LocalDirectory(lookup)

    def routers(self) -> Sequence[APIRouter]:
        return (router,) if self.rt.settings.messenger.gateway else ()

    def sockets(self) -> Mapping[str, Callable[[WebSocket], Awaitable[None]]]:
        """ESME's chat socket, ``/messenger-api/connect`` (docs/messenger.md)."""
        return {CONNECT_PATH: self.gateway.serve} if self.rt.settings.messenger.gateway else {}

    def state(self) -> dict[str, Any]:
        return {"messenger": self.service, "gateway": self.gateway, "messenger_relay": self.relay}

    def checks(self) -> Sequence[Check]:
        return [database_check("messenger_db", self.db, HISTORY)]

    async def start(self) -> None:
        await upgrade(self.db, HISTORY)
        roles = self.rt.settings.messenger
        if roles.consumer:
            self.relay.start_background()
            for sub in self.subscriptions:
                sub.start_background()
            self.commands.start_background()
        if roles.gateway:
            await self.gateway.start()

    async def stop(self) -> None:
        roles = self.rt.settings.messenger
        if roles.gateway:
            await self.gateway.stop()
        if roles.consumer:
            await self.commands.stop()
            await stop_all(self.subscriptions)
            await self.relay.stop()
