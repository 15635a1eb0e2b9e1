"""The bus: append-only streams with consumer groups, at-least-once delivery.

Two adapters pass one contract suite (``tests/core/test_bus_contract.py``):

* ``MemoryBus`` for the one-process mode and unit tests;
* ``RedisBus`` on Redis Streams for production (XADD / XREADGROUP / XACK / XAUTOCLAIM).

Every event has a unique id; a delivery is acknowledged only after its handler succeeded,
so a consumer that dies leaves its entries pending, and another member of the group claims
them after ``min_idle_ms``. Handlers must therefore be idempotent (see ``inbox``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger("aidpost.bus")


@dataclass(frozen=True)
class Event:
    type: str
    data: dict[str, Any]
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    time: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())

    def dumps(self) -> str:
        return json.dumps({"id": self.id, "type": self.type, "time": self.time, "data": self.data})

    @classmethod
    def loads(cls, raw: str | bytes) -> Event:
        obj = json.loads(raw)
        return cls(type=obj["type"], data=obj["data"], id=obj["id"], time=obj["time"])


@dataclass(frozen=True)
class Delivery:
    """One delivery of an event to a group member; ``delivery_id`` is what gets acked."""

    delivery_id: str
    event: Event
    attempts: int = 1


class Bus(Protocol):
    # Whether a read cancelled while it blocks can have taken entries (Redis: the server may
    # have handed them over already; they then wait for a claim).
    lossless_cancel: bool

    async def publish(self, stream: str, events: Sequence[Event]) -> None: ...

    async def publish_many(self, items: Sequence[tuple[str, Event]]) -> None:
        """Events for several streams in one round trip, each stream's in the given order."""
        ...

    async def read(
        self,
        stream: str,
        group: str,
        consumer: str,
        *,
        count: int = 100,
        block_ms: int = 1000,
        start: str = "0",
    ) -> list[Delivery]: ...

    async def read_many(
        self,
        streams: Sequence[str],
        group: str,
        consumer: str,
        *,
        count: int = 100,
        block_ms: int = 1000,
        start: str = "0",
    ) -> list[tuple[str, Delivery]]:
        """One read over several streams: (stream, delivery) pairs, each stream in order."""
        ...

    async def ack(self, stream: str, group: str, delivery_ids: Sequence[str]) -> None: ...

    async def ack_many(self, group: str, acks: Mapping[str, Sequence[str]]) -> None:
        """Acknowledge deliveries of several streams (stream -> delivery ids) in one round
        trip."""
        ...

    async def backlogs(self, streams: Sequence[str], group: str) -> dict[str, int | None]:
        """Per stream, the entries ``group`` has not acknowledged yet (unread and pending),
        in one round trip: 0 for a stream not made yet, the stream's length for a group not
        made yet (it will read from the start), None where the bus cannot tell (Redis
        older than 7.0, or after deletions inside the unread part)."""
        ...

    async def lease(self, name: str, owner: str, ttl_ms: int) -> bool:
        """Take the lease ``name`` for ``owner``, or extend it if ``owner`` holds it already.
        False if another owner holds it. A lease not extended lapses after ``ttl_ms``."""
        ...

    async def lease_many(self, names: Sequence[str], owner: str, ttl_ms: int) -> dict[str, bool]:
        """``lease`` for several names in one round trip: which ``owner`` holds now."""
        ...

    async def release(self, name: str, owner: str) -> None:
        """Give the lease up, if ``owner`` still holds it."""
        ...

    async def members(self, group: str, member: str, ttl_ms: int) -> int:
        """Say ``member`` of ``group`` is alive for ``ttl_ms`` more; how many members are."""
        ...

    async def leave(self, group: str, member: str) -> None: ...

    async def claim_stale(
        self, stream: str, group: str, consumer: str, *, min_idle_ms: int, count: int = 100
    ) -> list[Delivery]: ...

    async def claim_stale_many(
        self,
        streams: Sequence[str],
        group: str,
        consumer: str,
        *,
        min_idle_ms: int,
        count: int = 100,
    ) -> dict[str, list[Delivery]]:
        """``claim_stale`` for several streams in one round trip (up to ``count`` each)."""
        ...

    async def delete_group(self, stream: str, group: str) -> None:
        """Forget a group (a per-process group whose process is stopping)."""
        ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


@dataclass
class _Pending:
    consumer: str
    since: float
    attempts: int


@dataclass
class _Group:
    next_index: int
    pending: dict[int, _Pending] = field(default_factory=dict)


class MemoryBus:
    """In-process bus with the delivery semantics of Redis Streams consumer groups."""

    # A read cancelled while it waits has taken nothing (entries are handed out only when
    # it returns, with no await in between).
    lossless_cancel = True

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._streams: dict[str, list[Event]] = {}
        self._groups: dict[tuple[str, str], _Group] = {}
        # Set (and replaced) on every publish; readers wait on it. No lock is needed: nothing
        # below awaits between looking at a stream and updating a group.
        self._published = asyncio.Event()
        self._monotonic = monotonic
        self._leases: dict[str, tuple[str, float]] = {}
        self._members: dict[str, dict[str, float]] = {}

    async def publish(self, stream: str, events: Sequence[Event]) -> None:
        await self.publish_many([(stream, ev) for ev in events])

    async def publish_many(self, items: Sequence[tuple[str, Event]]) -> None:
        if not items:
            return
        for stream, ev in items:
            self._streams.setdefault(stream, []).append(ev)
        self._published.set()
        self._published = asyncio.Event()

    def _group(self, stream: str, group: str, start: str) -> _Group:
        key = (stream, group)
        if key not in self._groups:
            entries = self._streams.setdefault(stream, [])
            self._groups[key] = _Group(next_index=len(entries) if start == "$" else 0)
        return self._groups[key]

    async def read(
        self,
        stream: str,
        group: str,
        consumer: str,
        *,
        count: int = 100,
        block_ms: int = 1000,
        start: str = "0",
    ) -> list[Delivery]:
        deadline = self._monotonic() + block_ms / 1000
        g = self._group(stream, group, start)
        while True:
            entries = self._streams[stream]
            if g.next_index < len(entries):
                out = []
                now = self._monotonic()
                for index in range(g.next_index, min(len(entries), g.next_index + count)):
                    g.pending[index] = _Pending(consumer, now, 1)
                    out.append(Delivery(str(index), entries[index]))
                g.next_index += len(out)
                return out
            remaining = deadline - self._monotonic()
            if remaining <= 0:
                return []
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._published.wait(), remaining)

    async def read_many(
        self,
        streams: Sequence[str],
        group: str,
        consumer: str,
        *,
        count: int = 100,
        block_ms: int = 1000,
        start: str = "0",
    ) -> list[tuple[str, Delivery]]:
        deadline = self._monotonic() + block_ms / 1000
        while True:
            out: list[tuple[str, Delivery]] = []
            for stream in streams:
                got = await self.read(stream, group, consumer, count=count, block_ms=0, start=start)
                out.extend((stream, d) for d in got)
            remaining = deadline - self._monotonic()
            if out or remaining <= 0:
                return out
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._published.wait(), remaining)

    async def ack(self, stream: str, group: str, delivery_ids: Sequence[str]) -> None:
        g = self._groups.get((stream, group))
        if g is None:
            return
        for delivery_id in delivery_ids:
            g.pending.pop(int(delivery_id), None)

    async def lease(self, name: str, owner: str, ttl_ms: int) -> bool:
        now = self._monotonic()
        holder = self._leases.get(name)
        if holder is not None and holder[0] != owner and holder[1] > now:
            return False
        self._leases[name] = (owner, now + ttl_ms / 1000)
        return True

    async def lease_many(self, names: Sequence[str], owner: str, ttl_ms: int) -> dict[str, bool]:
        return {name: await self.lease(name, owner, ttl_ms) for name in names}

    async def release(self, name: str, owner: str) -> None:
        holder = self._leases.get(name)
        if holder is not None and holder[0] == owner:
            del self._leases[name]

    async def members(self, group: str, member: str, ttl_ms: int) -> int:
        now = self._monotonic()
        alive = self._members.setdefault(group, {})
        alive[member] = now + ttl_ms / 1000
        for name in [m for m, until in alive.items() if until <= now]:
            del alive[name]
        return len(alive)

    async def leave(self, group: str, member: str) -> None:
        self._members.get(group, {}).pop(member, None)

    async def claim_stale(
        self, stream: str, group: str, consumer: str, *, min_idle_ms: int, count: int = 100
    ) -> list[Delivery]:
        g = self._groups.get((stream, group))
        if g is None:
            return []
        now = self._monotonic()
        out: list[Delivery] = []
        for index, pending in sorted(g.pending.items()):
            if len(out) >= count:
                break
            if (now - pending.since) * 1000 >= min_idle_ms:
                pending.consumer, pending.since = consumer, now
                pending.attempts += 1
                out.append(Delivery(str(index), self._streams[stream][index], pending.attempts))
        return out

    async def claim_stale_many(
        self,
        streams: Sequence[str],
        group: str,
        consumer: str,
        *,
        min_idle_ms: int,
        count: int = 100,
    ) -> dict[str, list[Delivery]]:
        return {
            s: await self.claim_stale(s, group, consumer, min_idle_ms=min_idle_ms, count=count)
            for s in streams
        }

    async def delete_group(self, stream: str, group: str) -> None:
        self._groups.pop((stream, group), None)

    def lag(self, stream: str, group: str) -> int:
        """Entries the group has not yet handled (unread plus unacknowledged)."""
        g = self._groups.get((stream, group))
        total = len(self._streams.get(stream, []))
        return total if g is None else total - g.next_index + len(g.pending)

    async def backlogs(self, streams: Sequence[str], group: str) -> dict[str, int | None]:
        return {stream: self.lag(stream, group) for stream in streams}

    async def ack_many(self, group: str, acks: Mapping[str, Sequence[str]]) -> None:
        for stream, ids in acks.items():
            await self.ack(stream, group, ids)

    def pending_count(self, stream: str, group: str) -> int:
        g = self._groups.get((stream, group))
        return 0 if g is None else len(g.pending)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None


def redis_client(url: str, **options: Any) -> Any:
    """A redis-py client for aidpost's bus and hub. redis-py 8 asks every new connection
    to enable maintenance notifications (Redis Enterprise's); other servers refuse, which
    costs a round trip per connection and one more reply to read while reconnecting."""
    from redis.asyncio import Redis

    try:
        from redis.maint_notifications import MaintNotificationsConfig
    except ImportError:  # an older redis-py: no such handshake
        return Redis.from_url(url, **options)
    if "maint_notifications_config" not in inspect.signature(Redis.__init__).parameters:
        return Redis.from_url(url, **options)
    off = MaintNotificationsConfig(enabled=False)
    return Redis.from_url(url, maint_notifications_config=off, **options)


class RedisBus:
    """Redis Streams adapter. Streams are capped (approximately) at ``maxlen`` entries."""

    lossless_cancel = False

    def __init__(self, url: str, *, prefix: str = "aidpost:", maxlen: int = 1_000_000) -> None:
        self._redis = redis_client(url, decode_responses=False)
        self._prefix = prefix
        self._maxlen = maxlen
        self._groups_ready: set[tuple[str, str]] = set()

    def _key(self, stream: str) -> str:
        return self._prefix + stream

    async def publish(self, stream: str, events: Sequence[Event]) -> None:
        await self.publish_many([(stream, ev) for ev in events])

    async def publish_many(self, items: Sequence[tuple[str, Event]]) -> None:
        if not items:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for stream, ev in items:
                pipe.xadd(
                    self._key(stream), {"e": ev.dumps()}, maxlen=self._maxlen, approximate=True
                )
            await pipe.execute()

    async def _ensure_group(self, stream: str, group: str, start: str) -> None:
        if (stream, group) in self._groups_ready:
            return
        from redis.exceptions import ResponseError

        try:
            await self._redis.xgroup_create(self._key(stream), group, id=start, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups_ready.add((stream, group))

    @staticmethod
    def _deliveries(entries: Any, attempts: int = 1) -> list[Delivery]:
        out = []
        for entry_id, fields in entries:
            if fields is None:  # trimmed away while pending
                continue
            out.append(Delivery(entry_id.decode(), Event.loads(fields[b"e"]), attempts))
        return out

    async def read(
        self,
        stream: str,
        group: str,
        consumer: str,
        *,
        count: int = 100,
        block_ms: int = 1000,
        start: str = "0",
    ) -> list[Delivery]:
        from redis.exceptions import ResponseError

        await self._ensure_group(stream, group, start)
        try:
            result = await self._redis.xreadgroup(
                group,
                consumer,
                {self._key(stream): ">"},
                count=count,
                block=block_ms if block_ms > 0 else None,
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # Redis lost the group (restarted without persistence): make it again.
            self._groups_ready.discard((stream, group))
            return []
        if not result:
            return []
        entries: Any = result[0][1]
        return self._deliveries(entries)

    async def read_many(
        self,
        streams: Sequence[str],
        group: str,
        consumer: str,
        *,
        count: int = 100,
        block_ms: int = 1000,
        start: str = "0",
    ) -> list[tuple[str, Delivery]]:
        from redis.exceptions import ResponseError

        if not streams:
            await asyncio.sleep(block_ms / 1000)
            return []
        for stream in streams:
            await self._ensure_group(stream, group, start)
        names = {self._key(stream): stream for stream in streams}
        try:
            result = await self._redis.xreadgroup(
                group,
                consumer,
                dict.fromkeys(names, ">"),
                count=count,
                block=block_ms if block_ms > 0 else None,
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            for stream in streams:
                self._groups_ready.discard((stream, group))
            return []
        out: list[tuple[str, Delivery]] = []
        replies: Any = result or []
        for key, entries in replies:
            stream = names[key.decode() if isinstance(key, bytes) else str(key)]
            out.extend((stream, d) for d in self._deliveries(entries))
        return out

    async def ack(self, stream: str, group: str, delivery_ids: Sequence[str]) -> None:
        if delivery_ids:
            await self._redis.xack(self._key(stream), group, *delivery_ids)

    async def ack_many(self, group: str, acks: Mapping[str, Sequence[str]]) -> None:
        acks = {stream: ids for stream, ids in acks.items() if ids}
        if not acks:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for stream, ids in acks.items():
                pipe.xack(self._key(stream), group, *ids)
            await pipe.execute()

    async def backlogs(self, streams: Sequence[str], group: str) -> dict[str, int | None]:
        if not streams:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.xinfo_groups(self._key(stream))
                pipe.xlen(self._key(stream))
            replies = await pipe.execute(raise_on_error=False)
        out: dict[str, int | None] = {}
        for i, stream in enumerate(streams):
            groups, length = replies[2 * i], replies[2 * i + 1]
            if isinstance(groups, Exception):
                if "no such key" not in str(groups):
                    raise groups
                out[stream] = 0  # nothing was ever written to it
                continue
            found = [g for g in groups if g.get("name") in (group, group.encode())]
            if not found:
                out[stream] = int(length)  # the group, once made, reads from the start
                continue
            lag, pending = found[0].get("lag"), found[0].get("pending")
            out[stream] = None if lag is None else int(lag) + int(pending or 0)
        return out

    async def lease(self, name: str, owner: str, ttl_ms: int) -> bool:
        return bool(
            await self._redis.eval(_LEASE, 1, self._prefix + "lease:" + name, owner, ttl_ms)
        )

    async def lease_many(self, names: Sequence[str], owner: str, ttl_ms: int) -> dict[str, bool]:
        if not names:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.eval(_LEASE, 1, self._prefix + "lease:" + name, owner, ttl_ms)
            replies = await pipe.execute()
        return {name: bool(reply) for name, reply in zip(names, replies, strict=True)}

    async def release(self, name: str, owner: str) -> None:
        await self._redis.eval(_RELEASE, 1, self._prefix + "lease:" + name, owner)

    async def members(self, group: str, member: str, ttl_ms: int) -> int:
        key = self._prefix + "members:" + group
        return int(await self._redis.eval(_MEMBERS, 1, key, member, ttl_ms))

    async def leave(self, group: str, member: str) -> None:
        await self._redis.zrem(self._prefix + "members:" + group, member)

    async def claim_stale(
        self, stream: str, group: str, consumer: str, *, min_idle_ms: int, count: int = 100
    ) -> list[Delivery]:
        from redis.exceptions import ResponseError

        # No group yet means nothing is pending. Creating it here would pin its start to "0"
        # and defeat a later read(start="$") (Subscription claims before it reads).
        try:
            result = await self._redis.xautoclaim(
                self._key(stream), group, consumer, min_idle_time=min_idle_ms, count=count
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            return []
        return self._deliveries(result[1], attempts=2)

    async def claim_stale_many(
        self,
        streams: Sequence[str],
        group: str,
        consumer: str,
        *,
        min_idle_ms: int,
        count: int = 100,
    ) -> dict[str, list[Delivery]]:
        from redis.exceptions import ResponseError

        if not streams:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.xautoclaim(
                    self._key(stream), group, consumer, min_idle_time=min_idle_ms, count=count
                )
            replies = await pipe.execute(raise_on_error=False)
        out: dict[str, list[Delivery]] = {}
        for stream, reply in zip(streams, replies, strict=True):
            if isinstance(reply, ResponseError) and "NOGROUP" in str(reply):
                out[stream] = []  # no group yet: nothing pending (see claim_stale)
            elif isinstance(reply, Exception):
                raise reply
            else:
                out[stream] = self._deliveries(reply[1], attempts=2)
        return out

    async def delete_group(self, stream: str, group: str) -> None:
        await self._redis.xgroup_destroy(self._key(stream), group)
        self._groups_ready.discard((stream, group))

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except Exception:
            return False

    async def close(self) -> None:
        await self._redis.aclose()


# Take the lease if free or already ours (then extend it); never take another owner's.
_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
# Members live in a sorted set scored by when they lapse, in the server's time (the
# members' clocks may disagree).
_MEMBERS = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 10)
return redis.call('ZCARD', KEYS[1])
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def create_bus(url: str, prefix: str = "aidpost:") -> Bus:
    if url.startswith("memory:"):
        return MemoryBus()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisBus(url, prefix=prefix)
    raise ValueError(f"unsupported bus URL scheme: {url.split(':', 1)[0]}")


class Coalesced:
    """One round trip for the publishes of many tasks: what arrives while one is in flight
    goes in the next (a gateway's sockets each send one command at a time; under load this
    turns a round trip per command into one per batch of them).

    ``publish`` returns once its event is on the bus, or raises what the bus raised for its
    batch; one caller's events therefore keep their order.
    """

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._items: list[tuple[str, Event]] = []
        self._done: asyncio.Future[None] | None = None
        self._flusher: asyncio.Task[None] | None = None

    async def publish(self, stream: str, event: Event) -> None:
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
            # Its outcome is read even when every caller of the batch has gone.
            self._done.add_done_callback(lambda f: f.cancelled() or f.exception())
        done = self._done
        self._items.append((stream, event))
        if self._flusher is None:
            # Starts after the tasks woken with this one: their publishes join the batch.
            self._flusher = asyncio.create_task(self._flush(), name="bus-coalesced")
        await asyncio.shield(done)

    async def _flush(self) -> None:
        try:
            while self._done is not None:
                items, done = self._items, self._done
                self._items, self._done = [], None
                try:
                    await self.bus.publish_many(items)
                except asyncio.CancelledError:
                    done.cancel()
                    raise
                except Exception as exc:
                    done.set_exception(exc)
                else:
                    done.set_result(None)
        finally:
            self._flusher = None
            if self._done is not None:  # cancelled with a batch still to send
                self._done.cancel()
                self._items, self._done = [], None


Handler = Callable[[Event], Awaitable[None]]


class Subscription:
    """Runs a handler over a stream as one member of a consumer group.

    An entry is acked only after its handler returned; a failing handler leaves it pending
    and it is retried (by this or another member) once it has been idle ``min_idle_ms``.
    """

    def __init__(
        self,
        bus: Bus,
        stream: str,
        group: str,
        handler: Handler,
        *,
        consumer: str | None = None,
        start: str = "0",
        block_ms: int = 500,
        min_idle_ms: int = 30_000,
        batch: int = 100,
        ephemeral: bool = False,
        batch_handler: Callable[[list[Event]], Awaitable[None]] | None = None,
    ) -> None:
        self.bus, self.stream, self.group, self.handler = bus, stream, group, handler
        # An ephemeral group belongs to this process alone and is deleted when it stops.
        self.ephemeral = ephemeral
        # A batch handler gets every delivery of one read at once (all acked, or none).
        self.batch_handler = batch_handler
        self.consumer = consumer or uuid.uuid4().hex[:12]
        self.start, self.block_ms, self.min_idle_ms, self.batch = (
            start,
            block_ms,
            min_idle_ms,
            batch,
        )
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._waiting = False  # blocked in a read, holding nothing unhandled

    async def _handle(self, deliveries: list[Delivery]) -> None:
        if self.batch_handler is not None:
            if deliveries:
                await self.batch_handler([d.event for d in deliveries])
                await self.bus.ack(self.stream, self.group, [d.delivery_id for d in deliveries])
            return
        done = []
        for delivery in deliveries:
            try:
                await self.handler(delivery.event)
            except Exception:
                log.exception(
                    "handler failed", extra={"stream": self.stream, "event_id": delivery.event.id}
                )
                continue
            done.append(delivery.delivery_id)
        await self.bus.ack(self.stream, self.group, done)

    async def run_once(self, block_ms: int | None = None) -> int:
        stale = await self.bus.claim_stale(
            self.stream, self.group, self.consumer, min_idle_ms=self.min_idle_ms, count=self.batch
        )
        self._waiting = not stale
        try:
            fresh = await self.bus.read(
                self.stream,
                self.group,
                self.consumer,
                count=self.batch,
                block_ms=self.block_ms if block_ms is None else block_ms,
                start=self.start,
            )
        finally:
            self._waiting = False
        await self._handle(stale + fresh)
        return len(stale) + len(fresh)

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("bus read failed", extra={"stream": self.stream})
                await asyncio.sleep(1)

    def start_background(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"sub:{self.stream}:{self.group}")

    async def stop(self, grace: float = 5.0) -> None:
        """Let the read in flight and its handling finish (up to ``grace`` seconds), then stop.

        Cancelling a blocked read loses nothing but time: the server may already have handed
        the entries to this consumer, and they would wait ``min_idle_ms`` for another member.
        """
        self._stopping = True
        if self._task is not None and self._waiting and self.bus.lossless_cancel:
            self._task.cancel()  # the in-process bus hands out nothing mid-wait: stop now
        if self._task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self._task), grace)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self.ephemeral:
            try:
                await self.bus.delete_group(self.stream, self.group)
            except Exception:
                log.warning("could not delete group", extra={"group": self.group})


async def stop_all(subscriptions: Sequence[Subscription]) -> None:
    """Stop several subscriptions at once: each waits out its read in flight in parallel."""
    await asyncio.gather(*(sub.stop() for sub in subscriptions))
