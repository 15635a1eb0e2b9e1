"""Participant use cases (profiles so far). Each public method is one transaction."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from aidpost.auth import credentials
from aidpost.auth.passwords import Passwords
from aidpost.auth.service import SignInProfile
from aidpost.core import outbox as outbox_mod
from aidpost.core.bus import Event
from aidpost.core.clock import Clock
from aidpost.core.db import Database
from aidpost.core.errors import BadRequest, NotFound, Unauthorized
from aidpost.core.outbox import first_time
from aidpost.core.tokens import Principal
from aidpost.participant import readmodel, schemas, views
from aidpost.participant.help import HelpService
from aidpost.participant.models import HelpLock, Participant, inbox, outbox

PARTICIPANTS_STREAM = "participant.changes"
Json = dict[str, Any]


async def create(session: AsyncSession, email: str, phone: str, now: dt.datetime) -> Participant:
    """A new participant row; auth calls this at sign-up, in the same transaction as the
    credential."""
    if await credentials.email_taken(session, email):
        raise BadRequest("email already exists")
    user = Participant(email=email, phoneNumber=phone, timeCreated=now, timeSignOut=now)
    session.add(user)
    await session.flush()
    return user


async def sign_in_profile(session: AsyncSession, user_id: int) -> SignInProfile | None:
    user = await session.get(Participant, user_id)
    return None if user is None else SignInProfile(views.participant(user))


class ParticipantService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        passwords: Passwords,
        help: HelpService,
        on_commit: Any = lambda: None,
    ) -> None:
        self.db, self.clock, self.passwords, self.on_commit = db, clock, passwords, on_commit
        self.help = help

    async def _me(self, session: AsyncSession, principal: Principal) -> Participant:
        user = await session.get(Participant, principal.user_id)
        if user is None:
            raise Unauthorized("invalid token")
        return user

    async def events(
        self,
        principal: Principal,
        query: str | None,
        start_from: dt.datetime | None,
        start_to: dt.datetime | None,
    ) -> list[Json]:
        async with self.db.session() as session:
            await self._me(session, principal)
            found = await readmodel.search(session, self.clock.now(), query, start_from, start_to)
            return [views.event(e) for e in found]

    async def event(self, principal: Principal, event_id: int) -> Json:
        """An event with ``isChatRequested``: whether the caller holds its lock."""
        async with self.db.session() as session:
            user = await self._me(session, principal)
            found = await readmodel.find(session, self.clock.now(), event_id)
            if found is None:
                raise NotFound(f"event with id {event_id} not found")
            locked = await session.get(HelpLock, (user.id, event_id)) is not None
            return {**views.event(found), "isChatRequested": locked}

    async def users(self, ids: list[int]) -> dict[str, Json]:
        """ESME's internal ``GET /users``: a map id -> user; deleted users are absent."""
        async with self.db.session() as session:
            rows = await session.scalars(select(Participant).where(Participant.id.in_(ids)))
            return {str(u.id): views.participant(u) for u in rows.all()}

    async def profile(self, principal: Principal) -> Json:
        async with self.db.session() as session:
            return views.participant(await self._me(session, principal))

    async def update_profile(self, principal: Principal, body: schemas.UpdateProfile) -> Json:
        async with self.db.transaction() as session:
            user = await self._me(session, principal)
            if body.phoneNumber is not None:
                user.phoneNumber = body.phoneNumber
            return views.participant(user)

    async def delete_account(self, principal: Principal, password: str) -> Json:
        """Delete the profile and its credential once the password is confirmed, and tell the
        other components (waiting help requests end, chats stop showing the profile)."""
        async with self.db.session() as session:
            user = await self._me(session, principal)
            hashed = await credentials.hash_of(session, user.id)
        if not await self.passwords.verify(hashed, password):
            raise Unauthorized("invalid password")
        async with self.db.transaction() as session:
            user = await self._me(session, principal)
            view = views.participant(user)
            await self.help.end_all_of(session, user.id)
            await session.delete(user)
            await credentials.remove(session, [user.id])
            await outbox_mod.publish(
                session,
                outbox,
                PARTICIPANTS_STREAM,
                Event("participant.deleted.v1", {"participantId": user.id}),
            )
        self.on_commit()
        return view

    async def note_sign_out(self, event_id: str, user_id: int, when: dt.datetime) -> None:
        """Keep ``timeSignOut`` in step with auth's revocations."""
        async with self.db.transaction() as session:
            if not await first_time(session, inbox, event_id):
                return
            user = await session.get(Participant, user_id)
            if user is not None and when > user.timeSignOut:
                user.timeSignOut = when
