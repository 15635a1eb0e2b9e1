"""Events and agency approval, as the participant component sees them.

A read model fed by the organizer's ``organizer.changes`` stream, so that event search
never calls the organizer (ESME's participant API did, on every search). An event can be
found and requested only while its agency is approved and it is not over.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Select, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from aidpost.core.bus import Event as BusEvent
from aidpost.core.db import Database
from aidpost.core.outbox import first_time
from aidpost.core.validation import parse_datetime
from aidpost.participant.models import AgencyView, EventView, inbox

CHANGES_STREAM = "organizer.changes"


async def apply_change(db: Database, event: BusEvent) -> None:
    """Apply one organizer change, once (the inbox drops redeliveries)."""
    async with db.transaction() as session:
        if not await first_time(session, inbox, event.id):
            return
        data = event.data
        if event.type == "organizer.agency.changed.v1":
            await _apply_agency(session, int(data["id"]), data.get("agency"))
        elif event.type == "organizer.event.changed.v1":
            await _apply_event(session, int(data["id"]), data.get("event"))


async def _apply_agency(session: AsyncSession, agency_id: int, view: dict[str, Any] | None) -> None:
    if view is None:
        await session.execute(delete(EventView).where(EventView.agencyId == agency_id))
        await session.execute(delete(AgencyView).where(AgencyView.id == agency_id))
        return
    await session.merge(AgencyView(id=agency_id, approved=bool(view["approved"])))


async def _apply_event(session: AsyncSession, event_id: int, view: dict[str, Any] | None) -> None:
    if view is None:
        await session.execute(delete(EventView).where(EventView.id == event_id))
        return
    await session.merge(
        EventView(
            id=event_id,
            name=view["name"],
            description=view["description"],
            address=view["address"],
            lat=float(view["lat"]),
            lng=float(view["lng"]),
            timeStart=parse_datetime(view["timeStart"]),
            timeEnd=parse_datetime(view["timeEnd"]),
            agencyId=int(view["agencyId"]),
        )
    )


def visible(now: dt.datetime) -> Select[EventView]:
    """Events participants may find and ask for help at: approved agency, not over."""
    return (
        select(EventView)
        .join(AgencyView, AgencyView.id == EventView.agencyId)
        .where(AgencyView.approved.is_(True), EventView.timeEnd >= now)
    )


async def search(
    session: AsyncSession,
    now: dt.datetime,
    query: str | None,
    start_from: dt.datetime | None,
    start_to: dt.datetime | None,
    limit: int = 200,
) -> list[EventView]:
    stmt = visible(now).order_by(EventView.timeStart, EventView.id).limit(limit)
    if query:
        pattern = (
            "%" + query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        )
        stmt = stmt.where(
            or_(
                func.lower(EventView.name).like(pattern, escape="\\"),
                func.lower(EventView.description).like(pattern, escape="\\"),
                func.lower(EventView.address).like(pattern, escape="\\"),
            )
        )
    if start_from is not None:
        stmt = stmt.where(EventView.timeStart >= start_from)
    if start_to is not None:
        stmt = stmt.where(EventView.timeStart <= start_to)
    return list((await session.scalars(stmt)).all())


async def find(session: AsyncSession, now: dt.datetime, event_id: int) -> EventView | None:
    result: EventView | None = await session.scalar(visible(now).where(EventView.id == event_id))
    return result
