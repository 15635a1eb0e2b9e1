"""Help requests: ask, wait in the agency's queue, be taken into a chat, end.

Creating a request is one transaction: the per-(participant, event) lock, the request and
its ``help.requested.v1`` event (outbox) commit together or not at all, so a request is
never lost after the participant was told it was taken, and never exists without its
lock (ESME's two steps could do both). The messenger owns the queue and the chats; it tells
this component when a chat starts (``chat.started.v1``) and ends (``chat.closed.v1``), and
that is what moves a request on and releases its lock.

Queue order is the order of ``requestedAt`` (then id) within the agency; the messenger takes
requests in that order, so the position counted here is the position there.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from aidpost.core import outbox as outbox_mod
from aidpost.core.bus import Event as BusEvent
from aidpost.core.clock import Clock
from aidpost.core.db import Database
from aidpost.core.errors import BadRequest, NotFound, Unauthorized
from aidpost.core.outbox import first_time
from aidpost.core.tokens import Principal
from aidpost.organizer.views import iso
from aidpost.participant import readmodel, schemas
from aidpost.participant.models import HelpLock, HelpRequest, Participant, inbox, outbox

HELP_STREAM = "help.requests"
MESSENGER_STREAM = "messenger.chats"
WAITING, CLAIMED, CLOSED, CANCELLED = "waiting", "claimed", "closed", "cancelled"
OPEN = (WAITING, CLAIMED)
# Throughput over this window estimates the wait (claims per second of the agency).
ESTIMATE_WINDOW = dt.timedelta(minutes=30)
Json = dict[str, Any]


def event_not_found(event_id: int) -> NotFound:
    return NotFound(f"event with id {event_id} not found")


class HelpService:
    def __init__(self, db: Database, clock: Clock, on_commit: Any = lambda: None) -> None:
        self.db, self.clock, self.on_commit = db, clock, on_commit

    # -- views ------------------------------------------------------------------------------

    async def _position(self, session: AsyncSession, req: HelpRequest) -> int | None:
        if req.status != WAITING:
            return None
        ahead = await session.scalar(
            select(func.count())
            .select_from(HelpRequest)
            .where(
                HelpRequest.agencyId == req.agencyId,
                HelpRequest.status == WAITING,
                or_(
                    HelpRequest.requestedAt < req.requestedAt,
                    and_(HelpRequest.requestedAt == req.requestedAt, HelpRequest.id < req.id),
                ),
            )
        )
        return int(ahead or 0) + 1

    async def _estimate(
        self, session: AsyncSession, req: HelpRequest, position: int | None
    ) -> int | None:
        """Seconds until a chat, from how fast the agency has taken requests lately
        (Little's law); unknown (null) when it has taken none in the window."""
        if position is None:
            return None
        now = self.clock.now()
        since = now - ESTIMATE_WINDOW
        claims, first = (
            await session.execute(
                select(func.count(), func.min(HelpRequest.claimedAt)).where(
                    HelpRequest.agencyId == req.agencyId, HelpRequest.claimedAt >= since
                )
            )
        ).one()
        if not claims or first is None:
            return None
        first = first if first.tzinfo else first.replace(tzinfo=dt.UTC)
        span = max((now - first).total_seconds(), 60.0)
        return round(position * span / claims)

    async def _view(self, session: AsyncSession, req: HelpRequest) -> Json:
        position = await self._position(session, req)
        return {
            "id": req.id,
            "eventId": req.eventId,
            "agencyId": req.agencyId,
            "problemType": req.problemType,
            "description": req.description,
            "lat": req.lat,
            "lng": req.lng,
            "status": req.status,
            "requestedAt": iso(req.requestedAt),
            "claimedAt": iso(req.claimedAt),
            "endedAt": iso(req.endedAt),
            "chatId": req.chatId,
            "sendTranscript": bool(req.sendTranscript),
            "position": position,
            "estimatedWaitSeconds": await self._estimate(session, req, position),
        }

    # -- participant's side -----------------------------------------------------------------

    async def _participant(self, session: AsyncSession, principal: Principal) -> Participant:
        user = await session.get(Participant, principal.user_id)
        if user is None:
            raise Unauthorized("invalid token")
        return user

    async def create(self, principal: Principal, body: schemas.CreateHelpRequest) -> Json:
        now = self.clock.now()
        try:
            async with self.db.transaction() as session:
                user = await self._participant(session, principal)
                event = await readmodel.find(session, now, body.eventId)
                if event is None:
                    raise event_not_found(body.eventId)
                if await session.get(HelpLock, (user.id, event.id)) is not None:
                    raise BadRequest("chat request already exists")
                req = HelpRequest(
                    participantId=user.id,
                    eventId=event.id,
                    agencyId=event.agencyId,
                    problemType=body.problemType,
                    description=body.description,
                    lat=body.lat,
                    lng=body.lng,
                    status=WAITING,
                    requestedAt=now,
                    sendTranscript=body.sendTranscript,
                )
                session.add(req)
                await session.flush()
                session.add(HelpLock(participantId=user.id, eventId=event.id, requestId=req.id))
                await session.flush()
                await outbox_mod.publish(
                    session,
                    outbox,
                    HELP_STREAM,
                    BusEvent(
                        "help.requested.v1",
                        {
                            "requestId": req.id,
                            "participantId": user.id,
                            "eventId": event.id,
                            "agencyId": event.agencyId,
                            "problemType": req.problemType,
                            "description": req.description,
                            "lat": req.lat,
                            "lng": req.lng,
                            "requestedAt": iso(now),
                        },
                    ),
                )
                view = await self._view(session, req)
        except IntegrityError:
            # Two requests raced for the same lock: the database let exactly one through.
            raise BadRequest("chat request already exists") from None
        self.on_commit()
        return view

    async def lock_exists(self, principal: Principal, event_id: int) -> bool:
        async with self.db.session() as session:
            user = await self._participant(session, principal)
            if await readmodel.find(session, self.clock.now(), event_id) is None:
                raise event_not_found(event_id)
            return await session.get(HelpLock, (user.id, event_id)) is not None

    async def mine(self, principal: Principal) -> list[Json]:
        async with self.db.session() as session:
            user = await self._participant(session, principal)
            rows = await session.scalars(
                select(HelpRequest)
                .where(HelpRequest.participantId == user.id)
                .order_by(HelpRequest.requestedAt.desc(), HelpRequest.id.desc())
                .limit(100)
            )
            return [await self._view(session, r) for r in rows.all()]

    async def _own(
        self, session: AsyncSession, principal: Principal, request_id: int
    ) -> HelpRequest:
        user = await self._participant(session, principal)
        req = await session.get(HelpRequest, request_id)
        if req is None or req.participantId != user.id:
            raise NotFound(f"help request with id {request_id} not found")
        return req

    async def one(self, principal: Principal, request_id: int) -> Json:
        async with self.db.session() as session:
            return await self._view(session, await self._own(session, principal, request_id))

    async def cancel(self, principal: Principal, request_id: int) -> Json:
        """Withdraw a request that is still waiting; the lock goes, so the participant may
        ask again at that event."""
        async with self.db.transaction() as session:
            req = await self._own(session, principal, request_id)
            if req.status != WAITING:
                raise BadRequest("only a waiting help request can be cancelled")
            await self._end(session, req, CANCELLED)
            view = await self._view(session, req)
        self.on_commit()
        return view

    # -- ending -----------------------------------------------------------------------------

    async def _end(self, session: AsyncSession, req: HelpRequest, status: str) -> None:
        was_waiting = req.status == WAITING
        req.status, req.endedAt = status, self.clock.now()
        await session.execute(delete(HelpLock).where(HelpLock.requestId == req.id))
        if status == CLOSED and req.chatId:
            # The request's chat is over (the mailer may send the transcript).
            await outbox_mod.publish(
                session,
                outbox,
                HELP_STREAM,
                BusEvent(
                    "help.closed.v1",
                    {
                        "requestId": req.id,
                        "chatId": req.chatId,
                        "participantId": req.participantId,
                        "agencyId": req.agencyId,
                        "eventId": req.eventId,
                        "sendTranscript": bool(req.sendTranscript),
                    },
                ),
            )
        if was_waiting:
            # The messenger must drop it from the queue.
            await outbox_mod.publish(
                session,
                outbox,
                HELP_STREAM,
                BusEvent(
                    "help.cancelled.v1",
                    {"requestId": req.id, "agencyId": req.agencyId, "eventId": req.eventId},
                ),
            )

    async def end_all_of(self, session: AsyncSession, participant_id: int) -> None:
        """End every open request of a participant (their account is being deleted)."""
        rows = await session.scalars(
            select(HelpRequest).where(
                HelpRequest.participantId == participant_id, HelpRequest.status.in_(OPEN)
            )
        )
        for req in rows.all():
            await self._end(session, req, CANCELLED if req.status == WAITING else CLOSED)

    async def release_lock(self, participant_id: int, event_id: int) -> None:
        """ESME's internal ``DELETE /chat-requests``: the chat is over, the participant may
        ask again. Idempotent."""
        async with self.db.transaction() as session:
            lock = await session.get(HelpLock, (participant_id, event_id))
            if lock is None:
                return
            req = await session.get(HelpRequest, lock.requestId)
            if req is not None:
                await self._end(session, req, CANCELLED if req.status == WAITING else CLOSED)
            else:
                await session.delete(lock)
        self.on_commit()

    async def on_messenger_event(self, event: BusEvent) -> None:
        """``chat.started.v1`` claims a request; ``chat.closed.v1`` ends it (once each)."""
        if event.type not in ("chat.started.v1", "chat.closed.v1"):
            return
        async with self.db.transaction() as session:
            if not await first_time(session, inbox, event.id):
                return
            req = await session.get(HelpRequest, int(event.data["requestId"]))
            if req is None:
                return
            if event.type == "chat.started.v1" and req.status == WAITING:
                req.status, req.claimedAt = CLAIMED, self.clock.now()
                req.chatId = str(event.data.get("chatId") or "") or None
            elif event.type == "chat.closed.v1" and req.status in OPEN:
                await self._end(session, req, CLOSED)
        self.on_commit()
