"""Outbox and inbox on SQLite and PostgreSQL: only committed events leave, once, ids intact."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import pytest
from sqlalchemy import MetaData, Table, func, select
from sqlalchemy.exc import IntegrityError

from aidpost.core.bus import Event, MemoryBus
from aidpost.core.db import Database
from aidpost.core.outbox import OutboxRelay, first_time, inbox_table, outbox_table, publish
from tests.conftest import Databases


@dataclass
class Store:
    backend: str
    db: Database
    outbox: Table
    inbox: Table


class Boom(Exception):
    pass


@pytest.fixture
async def store(databases: Databases) -> AsyncIterator[Store]:
    metadata = MetaData()
    outbox, inbox = outbox_table(metadata), inbox_table(metadata)
    db = Database(databases.urls["organizer"])
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        yield Store(databases.backend, db, outbox, inbox)
    finally:
        await db.dispose()


async def drain(bus: MemoryBus, stream: str) -> list[Event]:
    """Everything on ``stream`` so far, read by a fresh group."""
    deliveries = await bus.read(stream, "test-" + uuid.uuid4().hex, "c", count=10_000, block_ms=0)
    return [d.event for d in deliveries]


async def unpublished(store: Store) -> int:
    async with store.db.session() as session:
        t = store.outbox
        query = select(func.count()).select_from(t).where(t.c.published_at.is_(None))
        return int((await session.execute(query)).scalar_one())


async def test_rolled_back_rows_are_never_relayed(store: Store) -> None:
    with pytest.raises(Boom):
        async with store.db.transaction() as session:
            await publish(session, store.outbox, "orders", Event("order.placed.v1", {"n": 1}))
            raise Boom

    bus = MemoryBus()
    relay = OutboxRelay(store.db, store.outbox, bus)
    assert await relay.relay_once() == 0
    assert await drain(bus, "orders") == []
    async with store.db.session() as session:
        assert (await session.execute(select(func.count()).select_from(store.outbox))).scalar() == 0


async def test_committed_rows_are_relayed_once_with_their_ids(store: Store) -> None:
    kept_1 = Event("order.placed.v1", {"n": 1, "items": [{"sku": "A", "qty": 2}], "note": "ż"})
    lost = Event("order.placed.v1", {"n": 2})
    kept_2 = Event("order.cancelled.v1", {"n": 3})
    other = Event("user.created.v1", {"id": 7})

    async with store.db.transaction() as session:
        await publish(session, store.outbox, "orders", kept_1)
        await publish(session, store.outbox, "users", other)
    with pytest.raises(Boom):
        async with store.db.transaction() as session:
            await publish(session, store.outbox, "orders", lost)
            raise Boom
    async with store.db.transaction() as session:
        await publish(session, store.outbox, "orders", kept_2)
    assert await unpublished(store) == 3

    bus = MemoryBus()
    relay = OutboxRelay(store.db, store.outbox, bus)
    assert await relay.relay_once() == 3
    assert await relay.relay_once() == 0

    # Same ids, types, times and data, in commit order per stream; the rolled-back one never.
    assert await drain(bus, "orders") == [kept_1, kept_2]
    assert await drain(bus, "users") == [other]
    assert await unpublished(store) == 0
    async with store.db.session() as session:
        t = store.outbox
        rows = (await session.execute(select(t.c.event_id, t.c.published_at))).all()
    assert {r.event_id for r in rows} == {kept_1.id, kept_2.id, other.id}
    assert all(r.published_at is not None and r.published_at.tzinfo is not None for r in rows)


async def test_relay_respects_limit_and_picks_up_later_commits(store: Store) -> None:
    sent = [Event("tick.v1", {"n": i}) for i in range(5)]
    async with store.db.transaction() as session:
        for event in sent[:3]:
            await publish(session, store.outbox, "ticks", event)

    bus = MemoryBus()
    relay = OutboxRelay(store.db, store.outbox, bus)
    assert await relay.relay_once(limit=2) == 2
    assert await relay.relay_once(limit=2) == 1

    async with store.db.transaction() as session:
        for event in sent[3:]:
            await publish(session, store.outbox, "ticks", event)
    assert await relay.relay_once() == 2
    assert await relay.relay_once() == 0
    assert await drain(bus, "ticks") == sent


async def test_same_event_id_cannot_be_stored_twice(store: Store) -> None:
    event = Event("order.placed.v1", {"n": 1})
    async with store.db.transaction() as session:
        await publish(session, store.outbox, "orders", event)
    with pytest.raises(IntegrityError):
        async with store.db.transaction() as session:
            await publish(session, store.outbox, "orders", event)


async def test_first_time_then_duplicate(store: Store) -> None:
    event_id = uuid.uuid4().hex
    async with store.db.transaction() as session:
        assert await first_time(session, store.inbox, event_id) is True
    async with store.db.transaction() as session:
        assert await first_time(session, store.inbox, event_id) is False
        assert await first_time(session, store.inbox, uuid.uuid4().hex) is True


async def test_first_time_rolled_back_does_not_count(store: Store) -> None:
    event_id = uuid.uuid4().hex
    with pytest.raises(Boom):
        async with store.db.transaction() as session:
            assert await first_time(session, store.inbox, event_id) is True
            raise Boom  # the handler failed: the event must be handled again
    async with store.db.transaction() as session:
        assert await first_time(session, store.inbox, event_id) is True


async def test_concurrent_duplicates_yield_exactly_one_first_time(store: Store) -> None:
    event_id = uuid.uuid4().hex

    async def second() -> bool:
        async with store.db.transaction() as session:
            return await first_time(session, store.inbox, event_id)

    async with store.db.transaction() as session:
        first = await first_time(session, store.inbox, event_id)
        task = asyncio.create_task(second())
        await asyncio.sleep(0.1)
        # The second waits for the first: on PostgreSQL its insert waits on the row lock; on
        # SQLite its transaction waits its turn (one transaction of a process at a time).
        assert not task.done()
    results = [first, await asyncio.wait_for(task, 5.0)]

    assert results == [True, False]
    async with store.db.session() as session:
        count = select(func.count()).select_from(store.inbox)
        assert (await session.execute(count)).scalar() == 1


async def test_concurrent_duplicates_gathered(store: Store) -> None:
    event_ids = [uuid.uuid4().hex for _ in range(3)]

    async def handle(event_id: str) -> bool:
        async with store.db.transaction() as session:
            result = await first_time(session, store.inbox, event_id)
            await asyncio.sleep(0.02)  # hold the transaction open a little
            return result

    results = await asyncio.gather(*(handle(e) for e in event_ids for _ in range(2)))

    for i in range(len(event_ids)):
        assert sorted(results[2 * i : 2 * i + 2]) == [False, True]


class SlowBus(MemoryBus):
    """A MemoryBus whose publish takes a while, so two relays overlap."""

    async def publish(self, stream: str, events: Sequence[Event]) -> None:
        await asyncio.sleep(0.1)
        await super().publish(stream, events)


async def test_two_relays_at_once(store: Store) -> None:
    """PostgreSQL: SKIP LOCKED gives each row to one relay. SQLite takes no row locks, so
    overlapping relays may both publish a row: at-least-once, which the inbox absorbs."""
    sent = [Event("tick.v1", {"n": i}) for i in range(10)]
    async with store.db.transaction() as session:
        for event in sent:
            await publish(session, store.outbox, "ticks", event)

    bus = SlowBus()
    one = OutboxRelay(store.db, store.outbox, bus)
    two = OutboxRelay(store.db, store.outbox, bus)
    counts = await asyncio.gather(one.relay_once(), two.relay_once())

    got = await drain(bus, "ticks")
    assert {e.id for e in got} == {e.id for e in sent}
    assert await unpublished(store) == 0
    if store.backend == "postgres":
        assert sorted(counts) == [0, 10]
        assert got == sent
