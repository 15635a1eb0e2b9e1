"""The prober: one at a time across replicas (a lease on the bus), it runs every due check,
stores the results, moves scheduled maintenance on time, delivers webhooks and prunes old
results. ``tick()`` is one pass, so tests drive it with a fake clock."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import httpx

from aidpost.core.bus import Bus
from aidpost.status import checks
from aidpost.status.checks import Outcome, Spec
from aidpost.status.service import StatusService
from aidpost.status.webhooks import WebhookSender

log = logging.getLogger("aidpost.status.prober")
LEASE = "status-prober"
Checker = Callable[[Spec], Awaitable[Outcome]]


class Prober:
    def __init__(
        self,
        service: StatusService,
        bus: Bus,
        owner: str,
        *,
        tick_seconds: float = 1.0,
        retention_days: int = 100,
        checker: Checker | None = None,
        webhooks: WebhookSender | None = None,
        concurrency: int = 20,
    ) -> None:
        self.service, self.bus, self.owner = service, bus, owner
        self.tick_seconds, self.retention_days = tick_seconds, retention_days
        self._client: httpx.AsyncClient | None = None
        self.checker = checker or self._check
        self.webhooks = webhooks
        self._limit = asyncio.Semaphore(concurrency)
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._last_prune: float | None = None
        self._tallying: asyncio.Task[None] | None = None
        self._delivering: asyncio.Task[None] | None = None
        self.leader = False

    async def _check(self, spec: Spec) -> Outcome:
        if self._client is None:
            self._client = httpx.AsyncClient(headers={"User-Agent": "aidpost-status-prober"})
        return await checks.run(spec, self._client)

    async def _check_one(self, spec: Spec) -> Outcome:
        async with self._limit:
            return await self.checker(spec)

    def _ttl_ms(self, timeout: float) -> int:
        # Long enough for the slowest check of a pass, so the lease outlives the pass.
        return int(max(5.0, self.tick_seconds * 5, 2 * timeout + self.tick_seconds + 1) * 1000)

    async def tick(self) -> int:
        """One pass, if this process holds the prober lease; returns the checks run."""
        due = await self.service.due()
        longest = max((c.timeoutSeconds for c in due), default=5.0)
        self.leader = await self.bus.lease(LEASE, self.owner, self._ttl_ms(longest))
        if not self.leader:
            return 0
        outcomes = await asyncio.gather(
            *(self._check_one(self.service.spec(c)) for c in due), return_exceptions=True
        )
        # Record only while still the prober: another may have taken over meanwhile.
        self.leader = await self.bus.lease(LEASE, self.owner, self._ttl_ms(longest))
        if not self.leader:
            log.warning("prober lease lost during a pass; its results are dropped")
            return 0
        for comp, outcome in zip(due, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                log.error("check failed to run", extra={"component": comp.id}, exc_info=outcome)
                outcome = Outcome(False, None, f"the check could not run: {outcome!r}"[:500])
            await self.service.record(comp.id, outcome)
        await self.service.tick_maintenance()
        if self.webhooks is not None and (self._delivering is None or self._delivering.done()):
            # Apart from the checks: a receiver that never answers must not delay them.
            self._delivering = asyncio.create_task(self._deliver(), name="status-webhooks")
        loop_time = asyncio.get_running_loop().time()
        if self._last_prune is None or loop_time - self._last_prune > 3600:
            self._last_prune = loop_time
            await self.service.prune(self.retention_days)
            if self._tallying is None or self._tallying.done():
                # Keep the past days' tallies ready, so no visitor waits for them; apart from
                # the checks, which must not wait either.
                self._tallying = asyncio.create_task(self._tally_days(), name="status-tallies")
        return len(due)

    async def _deliver(self) -> None:
        assert self.webhooks is not None
        try:
            while await self.webhooks.deliver_due() > 0:
                pass
        except Exception:
            log.exception("webhook deliveries failed")

    async def _tally_days(self) -> None:
        try:
            for comp in await self.service.components():
                await self.service.days(comp.id, 90)
        except Exception:
            log.exception("keeping uptime tallies failed")

    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("prober pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.tick_seconds)

    def start_background(self) -> None:
        self._stop.clear()
        self._task = asyncio.create_task(self._loop(), name="status-prober")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self._task), 10)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        for task in (self._tallying, self._delivering):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        with contextlib.suppress(Exception):
            await self.bus.release(LEASE, self.owner)
        if self._client is not None:
            await self._client.aclose()
            self._client = None
