"""Sharded consumption: every shard handled by one member at a time, in the order written,
with the shards shared evenly and taken over when a member stops or dies. Runs on the
in-process bus and on Redis."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest

from aidpost.core import shards
from aidpost.core.bus import Event, MemoryBus, RedisBus
from aidpost.core.shards import ShardedConsumer, shard_of, shard_stream

AnyBus = MemoryBus | RedisBus
LEASE_MS = 600
SHARDS = 8


class Recorder:
    """A handler that notes which member handled what, slowly enough to overlap."""

    def __init__(self) -> None:
        self.handled: list[tuple[str, int, int]] = []  # (member, key, n)
        self.fail_next = 0

    def handler(self, member: str):  # type: ignore[no-untyped-def]
        async def handle(batch: list[Event]) -> None:
            await asyncio.sleep(0.002)
            if self.fail_next:
                self.fail_next -= 1
                raise RuntimeError("database away")
            self.handled.extend((member, e.data["key"], e.data["n"]) for e in batch)

        return handle

    def per_key(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = defaultdict(list)
        for _, key, n in self.handled:
            out[key].append(n)
        return out


def member(bus: AnyBus, name: str, recorder: Recorder) -> ShardedConsumer:
    return ShardedConsumer(
        bus,
        "cmds",
        "workers",
        SHARDS,
        recorder.handler(name),
        consumer=name,
        batch=7,
        block_ms=20,
        lease_ms=LEASE_MS,
    )


async def produce(bus: AnyBus, keys: int, per_key: int) -> None:
    """Interleaved writes: n-th entry of every key, then the next n."""
    for n in range(per_key):
        for key in range(keys):
            shard = shard_of(f"chat-{key}", SHARDS)
            event = Event("cmd.v1", {"key": key, "n": n})
            await bus.publish(shard_stream("cmds", shard), [event])


async def until(condition, within: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def test_shard_of_is_stable_and_spreads() -> None:
    assert shard_of("chat-1", 16) == shard_of("chat-1", 16)
    assert len({shard_of(f"chat-{i}", 16) for i in range(200)}) == 16
    with pytest.raises(ValueError):
        ShardedConsumer(MemoryBus(), "s", "g", 0, Recorder().handler("x"))


async def test_members_share_shards_and_keep_each_keys_order(bus: AnyBus) -> None:
    recorder = Recorder()
    a, b = member(bus, "a", recorder), member(bus, "b", recorder)
    a.start_background()
    await until(lambda: len(a.owned) == SHARDS)
    b.start_background()
    try:
        # a gives up half once it sees b; b takes them
        await until(lambda: len(a.owned) == len(b.owned) == SHARDS // 2)
        assert a.owned.isdisjoint(b.owned)
        await produce(bus, keys=30, per_key=20)
        await until(lambda: len(recorder.handled) == 600)
    finally:
        await a.stop()
        await b.stop()
    assert {m for m, _, _ in recorder.handled} == {"a", "b"}
    assert all(ns == list(range(20)) for ns in recorder.per_key().values())


async def test_a_stopped_member_hands_over_at_once_and_a_dead_one_after_its_lease(
    bus: AnyBus,
) -> None:
    recorder = Recorder()
    a, b = member(bus, "a", recorder), member(bus, "b", recorder)
    a.start_background()
    b.start_background()
    try:
        await until(lambda: len(a.owned) + len(b.owned) == SHARDS and a.owned and b.owned)
        await a.stop()  # gives its shards up and leaves
        await until(lambda: len(b.owned) == SHARDS, within=LEASE_MS / 1000 * 3)

        c = member(bus, "c", recorder)
        c.start_background()
        await until(lambda: len(c.owned) == SHARDS // 2)
        # c dies: its tasks end without a word to the bus, leases and members lapse
        for task in c._tasks:
            task.cancel()
        await produce(bus, keys=20, per_key=10)
        await until(lambda: len(b.owned) == SHARDS, within=LEASE_MS / 1000 * 6)
        await until(lambda: len(recorder.handled) == 200)
    finally:
        await b.stop()
    assert all(ns == list(range(10)) for ns in recorder.per_key().values())


async def test_a_shard_given_up_while_its_lease_was_renewed_is_released(bus: AnyBus) -> None:
    """The renewals go in one round trip, while the handling loop may give a shard up (a
    member joined): a renewal that lands after the release must not keep the shard."""
    recorder = Recorder()
    a = member(bus, "a", recorder)
    await a.rebalance()
    assert len(a.owned) == SHARDS
    real = bus.lease_many
    given_up: list[int] = []

    async def renew_while_giving_up(names, owner, ttl_ms):  # type: ignore[no-untyped-def]
        a._target = SHARDS // 2  # as when another member is seen
        await a._give_up_extra()  # what the handling loop does meanwhile
        given_up.extend(set(range(SHARDS)) - a.owned)
        return await real(names, owner, ttl_ms)  # the renewals land after the releases

    bus.lease_many = renew_while_giving_up  # type: ignore[method-assign]
    try:
        await a.rebalance()
    finally:
        bus.lease_many = real  # type: ignore[method-assign]
    assert len(given_up) == SHARDS // 2 and len(a.owned) == SHARDS // 2
    for shard in given_up:  # free for another member at once, not after the lease
        assert await bus.lease(a._lease(shard), "b", LEASE_MS) is True
    await a.stop()


async def test_what_a_dead_member_read_is_handled_first_by_the_next(bus: AnyBus) -> None:
    recorder = Recorder()
    a = member(bus, "a", recorder)
    await a.rebalance()
    assert len(a.owned) == SHARDS
    await produce(bus, keys=10, per_key=3)
    streams = [shard_stream("cmds", s) for s in range(SHARDS)]
    # a reads the first entry of each shard and dies before handling it
    read = await bus.read_many(streams, "workers", "a", count=1, block_ms=100)
    assert read
    b = member(bus, "b", recorder)
    b.start_background()
    try:
        await until(lambda: len(recorder.handled) == 30, within=LEASE_MS / 1000 * 6)
    finally:
        await b.stop()
    assert all(ns == [0, 1, 2] for ns in recorder.per_key().values())


async def test_a_failed_batch_is_retried_before_anything_newer(bus: AnyBus) -> None:
    recorder = Recorder()
    a = member(bus, "a", recorder)
    await a.rebalance()
    await produce(bus, keys=5, per_key=2)
    recorder.fail_next = 1
    with pytest.raises(RuntimeError):
        await a.run_once(block_ms=100)
    await produce(bus, keys=5, per_key=1)  # n == 0 again, written later
    while len(recorder.handled) < 15:
        assert await a.run_once(block_ms=100) > 0
    # the failed batch's entries came back first, then the rest, per key in written order
    assert all(ns == [0, 1, 0] for ns in recorder.per_key().values())
    await a.stop()


async def test_entries_left_by_a_member_that_lost_its_shard_are_handled(bus: AnyBus) -> None:
    """A member whose read was blocked while its lease lapsed gets entries it will not
    handle; the shard's owner looks at what is pending at every rebalance and handles them."""
    recorder = Recorder()
    b = member(bus, "b", recorder)
    await b.rebalance()
    while await b.run_once(block_ms=10):  # nothing yet; b's drains are done
        pass
    await produce(bus, keys=4, per_key=2)
    streams = [shard_stream("cmds", s) for s in range(SHARDS)]
    stolen = await bus.read_many(streams, "workers", "old-owner", count=100, block_ms=100)
    assert len(stolen) == 8  # handed to a member that no longer owns the shards
    await b.rebalance()
    while len(recorder.handled) < 8:
        assert await b.run_once(block_ms=100) > 0
    assert all(ns == [0, 1] for ns in recorder.per_key().values())
    await b.stop()


async def test_a_busy_member_lingers_for_more_and_an_idle_one_does_not(
    bus: AnyBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "Answered at once" wider than on a quiet machine, so that a loaded one (CI) cannot
    # make a waiting entry look like one that had to be waited for.
    monkeypatch.setattr(shards, "ANSWERED_AT_ONCE_S", 0.03)
    batches: list[list[int]] = []

    async def handle(batch: list[Event]) -> None:
        batches.append([e.data["n"] for e in batch])

    one = ShardedConsumer(bus, "cmds", "workers", 1, handle, batch=10, block_ms=500,
                          linger_ms=80)  # fmt: skip
    await one.rebalance()
    await one.run_once()  # drains the (empty) shard it has just taken
    stream = shard_stream("cmds", 0)

    async def later(n: int, after: float) -> None:
        await asyncio.sleep(after)
        await bus.publish(stream, [Event("cmd.v1", {"key": 0, "n": n})])

    # Entries already waiting: the member is behind, and what comes within the linger
    # joins the same batch.
    await bus.publish(stream, [Event("cmd.v1", {"key": 0, "n": 0})])
    arrival = asyncio.create_task(later(1, 0.03))
    assert await one.run_once() == 2
    await arrival
    # Nothing waiting: the read waits (50 ms) for the entry and the batch is handled at once,
    # without the 80 ms linger.
    first, second = asyncio.create_task(later(2, 0.05)), asyncio.create_task(later(3, 0.2))
    started = asyncio.get_running_loop().time()
    assert await one.run_once() == 1
    assert asyncio.get_running_loop().time() - started < 0.12
    await first, await second  # type: ignore[func-returns-value]
    assert await one.run_once() == 1
    assert batches == [[0, 1], [2], [3]]
    await one.stop()
