"""Every insert, update and delete of an organizer entity goes through ``Changes``.

It writes the entity and its changelog row in the caller's transaction (ESME's
``LoggingEntityManager``), never with a password hash (credentials live in auth's table),
and for agencies and events also the bus event other components build read models from,
through the outbox, so change and event commit together.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from aidpost.core import outbox as outbox_mod
from aidpost.core.bus import Event as BusEvent
from aidpost.core.clock import Clock
from aidpost.organizer import views
from aidpost.organizer.models import Agency, Changelog, Event, User, outbox

CHANGES_STREAM = "organizer.changes"
# Other components keep read models of these: participants search events of approved
# agencies; the messenger checks staff roles and agencies.
PUBLISHED = {Agency: "agency", Event: "event", User: "user"}


class Changes:
    def __init__(self, session: AsyncSession, actor: User | None, clock: Clock) -> None:
        self.session, self.actor, self.clock = session, actor, clock

    async def log(self, kind: str, entity: Any, value: dict[str, Any] | None) -> None:
        self.session.add(
            Changelog(
                entityId=entity.id,
                entityClass=type(entity).__name__,
                type=kind,
                changedAt=self.clock.now(),
                valueAfter=None if value is None else json.dumps(value),
                userId=self.actor.id if self.actor else None,
                agencyId=self.actor.agencyId if self.actor else None,
            )
        )
        await self.announce(kind, entity, value)

    async def announce(self, kind: str, entity: Any, value: dict[str, Any] | None) -> None:
        """The bus event alone (a change no person made, e.g. the superadmin from settings)."""
        name = PUBLISHED.get(type(entity))
        if name is not None:
            data = {"id": entity.id, name: value, "deleted": value is None, "change": kind}
            await outbox_mod.publish(
                self.session, outbox, CHANGES_STREAM, BusEvent(f"organizer.{name}.changed.v1", data)
            )

    async def insert(self, entity: Any) -> Any:
        self.session.add(entity)
        await self.session.flush()
        await self.log("insert", entity, views.of(entity))
        return entity

    async def update(self, entity: Any) -> Any:
        await self.session.flush()
        await self.log("update", entity, views.of(entity))
        return entity

    async def delete(self, entity: Any) -> Any:
        await self.session.delete(entity)
        await self.session.flush()
        await self.log("delete", entity, None)
        return entity
