"""One contract for every bus adapter: MemoryBus and RedisBus must behave alike.

Each test runs once per adapter. The Redis run uses a fresh key prefix per test (database 15)
and deletes its keys afterwards. Idle-time behaviour is shown with real, short sleeps.
"""

from __future__ import annotations

import asyncio
import time

from aidpost.core.bus import Coalesced, Delivery, Event, MemoryBus, RedisBus, Subscription

AnyBus = MemoryBus | RedisBus

IDLE_MS = 100
PAST_IDLE = 0.15  # seconds to sleep so that IDLE_MS has surely passed


async def pending(bus: AnyBus, stream: str, group: str) -> int:
    """How many entries of ``group`` are delivered but not acked."""
    if isinstance(bus, MemoryBus):
        return bus.pending_count(stream, group)
    info = await bus._redis.xpending(bus._key(stream), group)
    return int(info["pending"])


def events(n: int, type_: str = "thing.happened.v1") -> list[Event]:
    return [
        Event(type=type_, data={"n": i, "name": f"zażółć-{i}", "tags": ["a", i]}) for i in range(n)
    ]


async def read_all(
    bus: AnyBus, stream: str, group: str, consumer: str, *, expect: int, start: str = "0"
) -> list[Delivery]:
    """Read until ``expect`` deliveries arrived (or a read comes back empty)."""
    out: list[Delivery] = []
    while len(out) < expect:
        batch = await bus.read(stream, group, consumer, block_ms=100, start=start)
        if not batch:
            break
        out.extend(batch)
    return out


async def test_publish_then_read_in_order_with_events_intact(bus: AnyBus) -> None:
    sent = events(5)
    await bus.publish("orders", sent)

    got = await bus.read("orders", "g", "c1", block_ms=100)

    assert [d.event for d in got] == sent  # ids, types, times and data all survive
    assert [d.event.id for d in got] == [e.id for e in sent]
    assert [d.event.data for d in got] == [e.data for e in sent]
    assert all(d.attempts == 1 for d in got)
    assert len({d.delivery_id for d in got}) == 5


async def test_read_of_empty_stream_returns_nothing_after_block(bus: AnyBus) -> None:
    assert await bus.read("quiet", "g", "c1", block_ms=20) == []


async def test_blocked_read_wakes_on_publish(bus: AnyBus) -> None:
    await bus.read("wake", "g", "c1", block_ms=1)  # group exists before the publish
    reader = asyncio.create_task(bus.read("wake", "g", "c1", block_ms=2000))
    await asyncio.sleep(0.05)
    assert not reader.done()
    sent = events(1)
    await bus.publish("wake", sent)
    got = await asyncio.wait_for(reader, 1.0)
    assert [d.event for d in got] == sent


async def test_streams_are_separate(bus: AnyBus) -> None:
    a, b = events(2, "a.v1"), events(3, "b.v1")
    await bus.publish("a", a)
    await bus.publish("b", b)
    assert [d.event for d in await bus.read("a", "g", "c", block_ms=50)] == a
    assert [d.event for d in await bus.read("b", "g", "c", block_ms=50)] == b


async def test_every_group_gets_every_event(bus: AnyBus) -> None:
    sent = events(4)
    await bus.publish("orders", sent)

    first = await bus.read("orders", "billing", "c1", block_ms=100)
    second = await bus.read("orders", "shipping", "c1", block_ms=100)

    assert [d.event for d in first] == sent
    assert [d.event for d in second] == sent


async def test_consumers_in_one_group_split_events(bus: AnyBus) -> None:
    sent = events(6)
    await bus.publish("orders", sent)

    one = await bus.read("orders", "g", "c1", count=4, block_ms=100)
    two = await bus.read("orders", "g", "c2", count=100, block_ms=100)
    more = await bus.read("orders", "g", "c1", block_ms=20)

    ids_one = {d.event.id for d in one}
    ids_two = {d.event.id for d in two}
    assert len(one) == 4 and len(two) == 2 and more == []
    assert ids_one.isdisjoint(ids_two)
    assert ids_one | ids_two == {e.id for e in sent}


async def test_unacked_event_is_not_reread_but_claimed_when_stale(bus: AnyBus) -> None:
    sent = events(2)
    await bus.publish("orders", sent)
    got = await bus.read("orders", "g", "c1", block_ms=100)
    assert len(got) == 2
    assert await pending(bus, "orders", "g") == 2

    # Not acked: a plain read never hands it out again, and it is not yet idle long enough.
    assert await bus.read("orders", "g", "c1", block_ms=20) == []
    assert await bus.read("orders", "g", "c2", block_ms=20) == []
    assert await bus.claim_stale("orders", "g", "c2", min_idle_ms=10_000) == []

    await asyncio.sleep(PAST_IDLE)
    claimed = await bus.claim_stale("orders", "g", "c2", min_idle_ms=IDLE_MS)

    assert [d.event for d in claimed] == sent
    assert all(d.attempts > 1 for d in claimed)
    # A claim resets the idle time: nobody else can claim it straight away.
    assert await bus.claim_stale("orders", "g", "c3", min_idle_ms=IDLE_MS) == []
    assert await pending(bus, "orders", "g") == 2

    await bus.ack("orders", "g", [d.delivery_id for d in claimed])
    assert await pending(bus, "orders", "g") == 0


async def test_stale_entries_of_several_streams_are_claimed_in_one_call(bus: AnyBus) -> None:
    """Per stream, what ``claim_stale`` would give: up to ``count`` each, in order; nothing
    for a stream with nothing pending, or with no group yet."""
    first, second = events(3), events(1)
    await bus.publish("orders.0", first)
    await bus.publish("orders.1", second)
    await bus.publish("orders.2", events(1))
    await bus.read("orders.0", "g", "c1", block_ms=100)
    await bus.read("orders.1", "g", "c1", block_ms=100)
    acked = await bus.read("orders.2", "g", "c1", block_ms=100)
    await bus.ack("orders.2", "g", [d.delivery_id for d in acked])
    await asyncio.sleep(PAST_IDLE)
    streams = ["orders.0", "orders.1", "orders.2", "orders.never"]
    claimed = await bus.claim_stale_many(streams, "g", "c2", min_idle_ms=IDLE_MS, count=2)
    assert {s: [d.event for d in ds] for s, ds in claimed.items()} == {
        "orders.0": first[:2],
        "orders.1": second,
        "orders.2": [],
        "orders.never": [],
    }
    assert all(d.attempts > 1 for ds in claimed.values() for d in ds)
    rest = await bus.claim_stale_many(streams, "g", "c2", min_idle_ms=0, count=10)
    assert [d.event for d in rest["orders.0"]] == first
    assert await bus.claim_stale_many([], "g", "c2", min_idle_ms=0) == {}


async def test_acked_events_are_never_claimed(bus: AnyBus) -> None:
    sent = events(3)
    await bus.publish("orders", sent)
    got = await bus.read("orders", "g", "c1", block_ms=100)
    await bus.ack("orders", "g", [got[0].delivery_id, got[2].delivery_id])
    assert await pending(bus, "orders", "g") == 1

    await asyncio.sleep(PAST_IDLE)
    claimed = await bus.claim_stale("orders", "g", "c2", min_idle_ms=IDLE_MS)
    assert [d.event for d in claimed] == [sent[1]]

    await bus.ack("orders", "g", [claimed[0].delivery_id])
    await asyncio.sleep(PAST_IDLE)
    assert await bus.claim_stale("orders", "g", "c2", min_idle_ms=IDLE_MS) == []
    assert await pending(bus, "orders", "g") == 0


async def test_ack_in_one_group_leaves_other_group_pending(bus: AnyBus) -> None:
    await bus.publish("orders", events(1))
    a = await bus.read("orders", "a", "c", block_ms=100)
    b = await bus.read("orders", "b", "c", block_ms=100)
    await bus.ack("orders", "a", [a[0].delivery_id])
    assert await pending(bus, "orders", "a") == 0
    assert await pending(bus, "orders", "b") == 1
    await asyncio.sleep(PAST_IDLE)
    assert [d.event for d in await bus.claim_stale("orders", "b", "c", min_idle_ms=IDLE_MS)] == [
        b[0].event
    ]


async def test_claim_on_unknown_group_returns_nothing(bus: AnyBus) -> None:
    await bus.publish("orders", events(1))
    assert await bus.claim_stale("orders", "nobody", "c", min_idle_ms=0) == []


async def test_start_dollar_skips_earlier_events_start_zero_sees_them(bus: AnyBus) -> None:
    earlier = events(3, "earlier.v1")
    await bus.publish("orders", earlier)

    assert await bus.read("orders", "new-only", "c", block_ms=20, start="$") == []
    from_zero = await bus.read("orders", "everything", "c", block_ms=100, start="0")
    assert [d.event for d in from_zero] == earlier

    later = events(2, "later.v1")
    await bus.publish("orders", later)
    assert [d.event for d in await bus.read("orders", "new-only", "c", block_ms=100)] == later
    assert [d.event for d in await bus.read("orders", "everything", "c", block_ms=100)] == later


async def test_subscription_with_start_dollar_skips_earlier_events(bus: AnyBus) -> None:
    await bus.publish("orders", events(2, "earlier.v1"))
    seen: list[Event] = []

    async def handler(event: Event) -> None:
        seen.append(event)

    sub = Subscription(bus, "orders", "g", handler, start="$", block_ms=20, min_idle_ms=IDLE_MS)
    assert await sub.run_once() == 0

    later = events(2, "later.v1")
    await bus.publish("orders", later)
    assert await sub.run_once(block_ms=100) == 2
    assert seen == later


async def test_subscription_acks_success_and_redelivers_failure(bus: AnyBus) -> None:
    sent = events(3)
    await bus.publish("orders", sent)
    calls: list[str] = []
    handled: list[str] = []
    flaky = sent[1].id

    async def handler(event: Event) -> None:
        calls.append(event.id)
        if event.id == flaky and calls.count(flaky) == 1:
            raise RuntimeError("first attempt fails")
        handled.append(event.id)

    sub = Subscription(bus, "orders", "g", handler, consumer="a", block_ms=50, min_idle_ms=IDLE_MS)
    assert await sub.run_once() == 3
    assert handled == [sent[0].id, sent[2].id]
    assert await pending(bus, "orders", "g") == 1  # the failed one stays pending

    # Too early for a claim and a plain read does not hand it out again.
    assert await sub.run_once(block_ms=20) == 0
    assert calls.count(flaky) == 1

    await asyncio.sleep(PAST_IDLE)
    other = Subscription(
        bus, "orders", "g", handler, consumer="b", block_ms=20, min_idle_ms=IDLE_MS
    )
    assert await other.run_once() == 1
    assert calls.count(flaky) == 2
    assert handled == [sent[0].id, sent[2].id, flaky]
    assert await pending(bus, "orders", "g") == 0

    await asyncio.sleep(PAST_IDLE)
    assert await sub.run_once(block_ms=20) == 0  # nothing left to claim or read


async def test_subscription_background_loop_handles_events(bus: AnyBus) -> None:
    got: asyncio.Queue[Event] = asyncio.Queue()

    async def handler(event: Event) -> None:
        await got.put(event)

    sub = Subscription(bus, "orders", "g", handler, block_ms=50)
    sub.start_background()
    try:
        sent = events(3)
        await bus.publish("orders", sent)
        received = [await asyncio.wait_for(got.get(), 2.0) for _ in sent]
    finally:
        await sub.stop()
    assert received == sent
    assert await pending(bus, "orders", "g") == 0


async def test_subscription_stopped_mid_handling_finishes_and_acks(bus: AnyBus) -> None:
    # A stop while the handler runs lets it finish: nothing is left pending on a consumer
    # that is gone (another member would wait min_idle_ms to claim it).
    started, handled = asyncio.Event(), []

    async def handler(event: Event) -> None:
        started.set()
        await asyncio.sleep(0.2)
        handled.append(event)

    sub = Subscription(bus, "orders", "g", handler, block_ms=50)
    sub.start_background()
    sent = events(1)
    await bus.publish("orders", sent)
    await asyncio.wait_for(started.wait(), 2.0)
    await sub.stop()
    assert handled == sent
    assert await pending(bus, "orders", "g") == 0


async def test_a_subscription_waiting_to_read_stops_without_losing_events(bus: AnyBus) -> None:
    """The in-process bus stops a waiting read at once; Redis waits it out (the server may
    have handed entries over). Either way what was published is handled by the next run."""
    handled: list[Event] = []

    async def handler(event: Event) -> None:
        handled.append(event)

    sub = Subscription(bus, "orders", "g", handler, consumer="a", block_ms=1500)
    sub.start_background()
    await asyncio.sleep(0.1)  # blocked in its read
    started = time.monotonic()
    await sub.stop()
    took = time.monotonic() - started
    assert took < (0.5 if bus.lossless_cancel else 2.5), took
    sent = events(2)
    await bus.publish("orders", sent)
    again = Subscription(bus, "orders", "g", handler, consumer="a", block_ms=50)
    await again.run_once()
    assert handled == sent


async def test_ping(bus: AnyBus) -> None:
    assert await bus.ping() is True


async def test_batch_publish_of_500_all_arrive(bus: AnyBus) -> None:
    sent = events(500)
    await bus.publish("bulk", sent)
    await bus.publish("bulk", [])  # an empty batch is a no-op

    got = await read_all(bus, "bulk", "g", "c1", expect=500)

    assert len(got) == 500
    assert [d.event.id for d in got] == [e.id for e in sent]
    assert [d.event for d in got] == sent
    assert await bus.read("bulk", "g", "c1", block_ms=20) == []
    await bus.ack("bulk", "g", [d.delivery_id for d in got])
    assert await pending(bus, "bulk", "g") == 0


async def test_read_many_reads_each_stream_in_order(bus: AnyBus) -> None:
    a, b = events(3, "a.v1"), events(2, "b.v1")
    await bus.publish("s.0", a)
    await bus.publish("s.1", b)

    got = await bus.read_many(["s.0", "s.1", "s.2"], "g", "c1", block_ms=100)

    assert [d.event for s, d in got if s == "s.0"] == a
    assert [d.event for s, d in got if s == "s.1"] == b
    assert await bus.read_many(["s.0", "s.1"], "g", "c1", block_ms=20) == []
    await bus.ack("s.0", "g", [d.delivery_id for s, d in got if s == "s.0"])
    assert await pending(bus, "s.0", "g") == 0 and await pending(bus, "s.1", "g") == 2


async def test_read_many_wakes_on_publish_to_any_stream(bus: AnyBus) -> None:
    await bus.read_many(["w.0", "w.1"], "g", "c1", block_ms=1)
    reader = asyncio.create_task(bus.read_many(["w.0", "w.1"], "g", "c1", block_ms=2000))
    await asyncio.sleep(0.05)
    assert not reader.done()
    sent = events(1)
    await bus.publish("w.1", sent)
    assert [(s, d.event) for s, d in await asyncio.wait_for(reader, 1.0)] == [("w.1", sent[0])]


async def test_read_many_of_nothing_waits_and_returns_nothing(bus: AnyBus) -> None:
    assert await bus.read_many([], "g", "c1", block_ms=20) == []


async def test_a_lease_has_one_owner_until_released_or_lapsed(bus: AnyBus) -> None:
    assert await bus.lease("shard-1", "a", IDLE_MS) is True
    assert await bus.lease("shard-1", "b", IDLE_MS) is False
    assert await bus.lease("shard-1", "a", IDLE_MS) is True  # extended by its owner
    assert await bus.lease("shard-2", "b", IDLE_MS) is True  # leases are separate

    await bus.release("shard-1", "b")  # not b's to give up
    assert await bus.lease("shard-1", "b", IDLE_MS) is False
    await bus.release("shard-1", "a")
    assert await bus.lease("shard-1", "b", IDLE_MS) is True

    await asyncio.sleep(PAST_IDLE)  # b stopped extending it
    assert await bus.lease("shard-1", "a", IDLE_MS) is True


async def test_leases_taken_and_kept_many_at_once(bus: AnyBus) -> None:
    assert await bus.lease("shard-2", "b", IDLE_MS) is True
    names = ["shard-1", "shard-2", "shard-3"]
    assert await bus.lease_many(names, "a", IDLE_MS) == {
        "shard-1": True,
        "shard-2": False,  # b's
        "shard-3": True,
    }
    assert await bus.lease_many(["shard-1", "shard-3"], "a", IDLE_MS) == {
        "shard-1": True,  # extended by its owner
        "shard-3": True,
    }
    assert await bus.lease("shard-3", "b", IDLE_MS) is False
    assert await bus.lease_many([], "a", IDLE_MS) == {}
    await asyncio.sleep(PAST_IDLE)  # nobody extended them
    assert await bus.lease_many(names, "b", IDLE_MS) == dict.fromkeys(names, True)


async def test_members_are_counted_while_they_say_they_are_alive(bus: AnyBus) -> None:
    assert await bus.members("crew", "a", 10_000) == 1
    assert await bus.members("crew", "b", IDLE_MS) == 2
    assert await bus.members("crew", "a", 10_000) == 2  # saying it again counts once
    assert await bus.members("other", "a", 10_000) == 1
    await asyncio.sleep(PAST_IDLE)  # b lapsed
    assert await bus.members("crew", "a", 10_000) == 1
    await bus.members("crew", "c", 10_000)
    await bus.leave("crew", "c")
    assert await bus.members("crew", "a", 10_000) == 1


async def test_publish_many_keeps_each_streams_order(bus: AnyBus) -> None:
    a, b = events(3), events(2, "other.v1")
    await bus.publish_many([("a", a[0]), ("b", b[0]), ("a", a[1]), ("b", b[1]), ("a", a[2])])

    assert [d.event for d in await read_all(bus, "a", "g", "c", expect=3)] == a
    assert [d.event for d in await read_all(bus, "b", "g", "c", expect=2)] == b


async def test_coalesced_publishes_of_many_tasks_share_round_trips(bus: AnyBus) -> None:
    calls: list[int] = []
    publish_many = bus.publish_many

    async def counted(items):  # type: ignore[no-untyped-def]
        calls.append(len(items))
        await publish_many(items)

    bus.publish_many = counted  # type: ignore[method-assign]
    out = Coalesced(bus)
    sent = events(40)

    async def sender(part: list[Event]) -> None:
        for ev in part:  # one at a time, each after the last is on the bus
            await out.publish(f"s{ev.data['n'] % 4}", ev)

    await asyncio.gather(*(sender(sent[i::10]) for i in range(10)))

    assert sum(calls) == 40
    assert len(calls) < 40  # the ten senders' events went together
    for s in range(4):
        got = await read_all(bus, f"s{s}", "g", "c", expect=10)
        assert [d.event for d in got] == [e for e in sent if e.data["n"] % 4 == s]


async def test_coalesced_gives_every_caller_of_a_batch_the_buses_error(bus: AnyBus) -> None:
    async def broken(items):  # type: ignore[no-untyped-def]
        raise ConnectionError("bus down")

    bus.publish_many = broken  # type: ignore[method-assign]
    out = Coalesced(bus)
    results = await asyncio.gather(
        *(out.publish("x", ev) for ev in events(3)), return_exceptions=True
    )
    assert [type(r) for r in results] == [ConnectionError] * 3


async def test_backlog_counts_what_the_group_has_not_acknowledged(bus: AnyBus) -> None:
    assert await bus.backlogs([], "g") == {}
    assert await bus.backlogs(["never"], "g") == {"never": 0}
    await bus.publish("work", events(5))
    # no group yet: once made, it reads from the start, so all five are still to handle
    assert await bus.backlogs(["work"], "g") == {"work": 5}
    first = await bus.read("work", "g", "c", count=2, block_ms=100)
    assert await bus.backlogs(["work"], "g") == {"work": 5}  # read, not acknowledged
    await bus.ack("work", "g", [d.delivery_id for d in first])
    assert await bus.backlogs(["work", "never"], "g") == {"work": 3, "never": 0}
    rest = await read_all(bus, "work", "g", "c", expect=3)
    await bus.ack("work", "g", [d.delivery_id for d in rest])
    await bus.publish("work", events(1))
    assert await bus.backlogs(["work"], "g") == {"work": 1}
    assert await bus.backlogs(["work"], "other") == {"work": 6}  # groups count apart


async def test_ack_many_acknowledges_several_streams_at_once(bus: AnyBus) -> None:
    await bus.publish_many([("a", e) for e in events(3)] + [("b", e) for e in events(2)])
    got = await bus.read_many(["a", "b"], "g", "c", block_ms=100)
    ids: dict[str, list[str]] = {"a": [], "b": [], "empty": []}
    for stream, d in got:
        ids[stream].append(d.delivery_id)
    await bus.ack_many("g", {"a": ids["a"][:2], "b": ids["b"], "empty": []})
    assert await pending(bus, "a", "g") == 1
    assert await pending(bus, "b", "g") == 0
    await bus.ack_many("g", {"a": ids["a"][2:]})
    assert await pending(bus, "a", "g") == 0
    assert await bus.backlogs(["a", "b"], "g") == {"a": 0, "b": 0}
