"""Ordered consumption by many processes: a stream split into shards, one owner per shard.

A consumer group alone spreads a stream's entries over its members, so two entries of one
chat can be handled at the same time by two processes and finish in either order. Here the
stream is split into ``shards`` streams (``<stream>.<n>``; producers pick the shard from a key,
e.g. the chat id), and each shard is read by exactly one live member at a time, which holds
the shard's lease on the bus. Members share the shards evenly (at most ``ceil(shards /
live members)`` each): a member that joins takes free shards, one that holds too many gives
the extra ones up between batches, one that stops gives all of its up, and the shards of one
that dies are taken when their leases lapse (``lease_ms``). A new owner first handles what
the last owner read but did not acknowledge, then new entries: each shard is handled in the
order it was written.

A member that stalls longer than ``lease_ms`` (a frozen process) can overlap with the next
owner for the batch it holds; handlers must be idempotent, as for any at-least-once
delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
import zlib
from collections import defaultdict
from collections.abc import Awaitable, Callable

from aidpost.core.bus import Bus, Delivery, Event

log = logging.getLogger("aidpost.shards")

BatchHandler = Callable[[list[Event]], Awaitable[None]]
# A read answered this fast found its entries waiting (one that had to wait for them takes
# longer, unless they came at that very moment).
ANSWERED_AT_ONCE_S = 0.002


def shard_of(key: str, shards: int) -> int:
    """The shard of a key; the same on every process and every run."""
    return zlib.crc32(key.encode()) % shards


def shard_stream(stream: str, shard: int) -> str:
    return f"{stream}.{shard}"


class ShardedConsumer:
    def __init__(
        self,
        bus: Bus,
        stream: str,
        group: str,
        shards: int,
        handler: BatchHandler,
        *,
        consumer: str | None = None,
        batch: int = 100,
        block_ms: int = 100,
        lease_ms: int = 5000,
        linger_ms: float = 0.0,
    ) -> None:
        if shards < 1:
            raise ValueError("shards must be at least 1")
        self.bus, self.stream, self.group, self.shards = bus, stream, group, shards
        self.handler = handler
        self.consumer = consumer or uuid.uuid4().hex[:12]
        self.batch, self.block_ms, self.lease_ms = batch, block_ms, lease_ms
        # Under load (entries were waiting when the read came), wait this long for more
        # before handling them: fewer, larger batches, each one commit (see run_once).
        self.linger_ms = linger_ms
        self.owned: set[int] = set()
        # Shards whose unacknowledged entries are handled before anything new is read: just
        # taken over (the last owner may have left some), or after a failed batch.
        self._drain: set[int] = set()
        self._target = shards
        self._stopping = False
        self._leases_done = False
        self._tasks: list[asyncio.Task[None]] = []

    def _lease(self, shard: int) -> str:
        return f"{self.group}:{shard_stream(self.stream, shard)}"

    # -- ownership -----------------------------------------------------------------------------

    async def rebalance(self) -> None:
        """Say this member is alive, keep its leases, and take free shards up to its share."""
        live = await self.bus.members(self.group, self.consumer, self.lease_ms)
        self._target = math.ceil(self.shards / max(live, 1))
        # Every owned lease renewed in one round trip: on a saturated event loop each await
        # is a wait behind everything else ready to run, and eight of them in a row once
        # outlasted the lease.
        held = sorted(self.owned)
        kept = await self.bus.lease_many(
            [self._lease(s) for s in held], self.consumer, self.lease_ms
        )
        for shard in held:
            if shard not in self.owned:
                # Given up while the renewal was on its way, which may have taken it back.
                if kept[self._lease(shard)]:
                    await self.bus.release(self._lease(shard), self.consumer)
                continue
            if not kept[self._lease(shard)]:
                log.warning("shard lease lost", extra={"shard": shard, "group": self.group})
                self.owned.discard(shard)
                self._drain.discard(shard)
        # Look again at what the owned shards hold pending: a member that lost a shard while
        # its read was blocked can have been handed entries it then left unacknowledged.
        self._drain |= self.owned
        if len(self.owned) >= self._target:
            return
        # Start the search at a place of this member's own, so joiners do not all race for
        # the same shards.
        offset = shard_of(self.consumer, self.shards)
        for i in range(self.shards):
            shard = (offset + i) % self.shards
            if shard in self.owned:
                continue
            if await self.bus.lease(self._lease(shard), self.consumer, self.lease_ms):
                self.owned.add(shard)
                self._drain.add(shard)
                if len(self.owned) >= self._target:
                    break

    async def _give_up_extra(self) -> None:
        while len(self.owned) > self._target:
            shard = max(self.owned)
            self.owned.discard(shard)
            self._drain.discard(shard)
            await self.bus.release(self._lease(shard), self.consumer)

    # -- handling ------------------------------------------------------------------------------

    async def run_once(self, block_ms: int | None = None) -> int:
        """One batch: what must be drained first, else new entries of the owned shards."""
        await self._give_up_extra()
        deliveries: list[tuple[str, Delivery]] = []
        if self._drain:
            # Every shard to drain in one round trip: ``rebalance`` marks all owned shards
            # each time it runs, and this loop handles nothing while it waits.
            drain = {shard_stream(self.stream, s): s for s in sorted(self._drain)}
            stale = await self.bus.claim_stale_many(
                list(drain), self.group, self.consumer, min_idle_ms=0, count=self.batch
            )
            for stream, shard in drain.items():
                if stale[stream]:
                    deliveries.extend((stream, d) for d in stale[stream])
                else:
                    self._drain.discard(shard)
        draining = bool(deliveries)
        if not draining:
            # Never read new entries of a shard whose pending ones are not handled yet (it
            # may have been taken over while the claims above were waiting).
            streams = [shard_stream(self.stream, s) for s in sorted(self.owned - self._drain)]
            loop = asyncio.get_running_loop()
            asked = loop.time()
            deliveries = await self.bus.read_many(
                streams,
                self.group,
                self.consumer,
                count=self.batch,
                block_ms=self.block_ms if block_ms is None else block_ms,
            )
            if (
                deliveries
                and self.linger_ms > 0
                and len(deliveries) < self.batch
                and loop.time() - asked < ANSWERED_AT_ONCE_S
            ):
                # The entries were there already: this member is busy, and what arrives in
                # the next moment joins this batch (one transaction, one commit) instead of
                # making a batch of its own. A member that waited for its entries is idle
                # enough to handle them at once, so a quiet system adds no latency.
                await asyncio.sleep(self.linger_ms / 1000)
                deliveries += await self.bus.read_many(
                    streams,
                    self.group,
                    self.consumer,
                    count=self.batch - len(deliveries),
                    block_ms=0,
                )
        if not deliveries:
            return 0
        # Ownership may have moved while the read blocked: handle only what is still ours.
        mine = {shard_stream(self.stream, s) for s in self.owned}
        deliveries = [(stream, d) for stream, d in deliveries if stream in mine]
        try:
            await self.handler([d.event for _, d in deliveries])
        except BaseException:
            for stream, _ in deliveries:
                self._drain.add(int(stream.rsplit(".", 1)[1]))
            raise
        by_stream: dict[str, list[str]] = defaultdict(list)
        for stream, d in deliveries:
            by_stream[stream].append(d.delivery_id)
        await self.bus.ack_many(self.group, by_stream)
        return len(deliveries)

    async def _handle_loop(self) -> None:
        while not self._stopping:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sharded batch failed", extra={"stream": self.stream})
                await asyncio.sleep(1)

    async def _keep_loop(self) -> None:
        # Runs until stop() has finished the batch in hand (the leases stay alive for it).
        # A flag as well as the cancel: a client library may swallow a cancellation.
        while not self._leases_done:
            try:
                await self.rebalance()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("shard rebalance failed", extra={"group": self.group})
            await asyncio.sleep(self.lease_ms / 4000)

    def start_background(self) -> None:
        self._stopping = False
        self._leases_done = False
        self._tasks = [
            asyncio.create_task(self._keep_loop(), name=f"shards-keep:{self.stream}"),
            asyncio.create_task(self._handle_loop(), name=f"shards:{self.stream}"),
        ]

    async def stop(self, grace: float = 5.0) -> None:
        """Finish the batch in hand (up to ``grace`` seconds), then give every shard up."""
        self._stopping = True
        if self._tasks:
            keep, handle = self._tasks
            # The leases are kept alive until the batch in hand is done.
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(handle), grace)
            handle.cancel()
            self._leases_done = True
            keep.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self._tasks = []
        with contextlib.suppress(Exception):
            for shard in sorted(self.owned):
                await self.bus.release(self._lease(shard), self.consumer)
            await self.bus.leave(self.group, self.consumer)
        self.owned.clear()
        self._drain.clear()
