"""Outbox and inbox: a database change and its event commit together; handling is idempotent.

``add(session, stream, event)`` stores the event in the component's ``outbox`` table inside
the caller's transaction. ``OutboxRelay`` publishes stored rows to the bus after commit and
marks them published; several relays may run (PostgreSQL rows are taken with SKIP LOCKED),
and a crash between publish and mark only causes a duplicate, which consumers drop through
their ``inbox`` table (``first_time``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections import defaultdict
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Integer, MetaData, String, Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from aidpost.core import faults
from aidpost.core.bus import Bus, Event
from aidpost.core.db import Database, UTCDateTime

log = logging.getLogger("aidpost.outbox")


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        "outbox",
        metadata,
        Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
        Column("event_id", String(64), nullable=False, unique=True),
        Column("stream", String(200), nullable=False),
        Column("type", String(200), nullable=False),
        Column("time", String(64), nullable=False),
        Column("data", JSON, nullable=False),
        Column("published_at", UTCDateTime(), nullable=True, index=True),
    )


def inbox_table(metadata: MetaData) -> Table:
    return Table(
        "inbox",
        metadata,
        Column("event_id", String(64), primary_key=True),
        Column("handled_at", UTCDateTime(), nullable=False),
    )


async def publish(session: AsyncSession, table: Table, stream: str, event: Event) -> None:
    """Insert ``event`` into the outbox in the caller's transaction."""
    await session.execute(
        table.insert().values(
            event_id=event.id, stream=stream, type=event.type, time=event.time, data=event.data
        )
    )


async def first_time(session: AsyncSession, table: Table, event_id: str) -> bool:
    """Record ``event_id`` as handled; False if it was handled before (drop the duplicate)."""
    dialect = session.get_bind().dialect.name
    values: dict[str, Any] = {"event_id": event_id, "handled_at": dt.datetime.now(dt.UTC)}
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(table).values(**values).on_conflict_do_nothing()
    else:
        stmt = sqlite.insert(table).values(**values).on_conflict_do_nothing()
    result = await session.execute(stmt)
    return bool(result.rowcount)  # type: ignore[attr-defined]


class OutboxRelay:
    """Moves committed outbox rows to the bus, promptly after ``kick()`` and on a timer."""

    def __init__(self, db: Database, table: Table, bus: Bus, *, interval: float = 1.0) -> None:
        self.db, self.table, self.bus, self.interval = db, table, bus, interval
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def kick(self) -> None:
        self._wake.set()

    async def relay_once(self, limit: int = 500) -> int:
        # One pass at a time in this process (SQLite has no row locks to keep two apart).
        async with self._lock:
            return await self._relay(limit)

    async def _relay(self, limit: int) -> int:
        t = self.table
        async with self.db.transaction() as session:
            rows = (
                await session.execute(
                    select(t.c.seq, t.c.event_id, t.c.stream, t.c.type, t.c.time, t.c.data)
                    .where(t.c.published_at.is_(None))
                    .order_by(t.c.seq)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            by_stream: dict[str, list[Event]] = defaultdict(list)
            for row in rows:
                by_stream[row.stream].append(
                    Event(type=row.type, data=row.data, id=row.event_id, time=row.time)
                )
            for stream, events in by_stream.items():
                faults.point(f"outbox.before_publish:{stream}")
                await self.bus.publish(stream, events)
                faults.point(f"outbox.after_publish:{stream}")
            await session.execute(
                update(t)
                .where(t.c.seq.in_([r.seq for r in rows]))
                .values(published_at=dt.datetime.now(dt.UTC))
            )
        return len(rows)

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            try:
                while await self.relay_once() > 0:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay failed")
                await asyncio.sleep(self.interval)

    def start_background(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            # Publish what committed before the stop, so a clean shutdown leaves nothing behind.
            with contextlib.suppress(Exception):
                await self.relay_once()
