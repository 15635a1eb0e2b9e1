"""A status service on a fresh database with a fake clock, and a prober whose checks are
scripted per component (the checks themselves are tested against real servers)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from aidpost.core.bus import MemoryBus
from aidpost.core.clock import FakeClock
from aidpost.core.db import Database
from aidpost.core.migrate import upgrade
from aidpost.status.checks import Outcome, Spec
from aidpost.status.config import parse
from aidpost.status.models import outbox
from aidpost.status.prober import Prober
from aidpost.status.service import StatusService
from tests.conftest import Databases
from tests.web.browser import browser, chromium, shots  # noqa: F401 (the page's browser tests)

T0 = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
CONFIG = {
    "groups": [
        {
            "id": "services",
            "name": "Services",
            "components": [
                {"id": "api", "name": "API", "kind": "http", "target": "http://api.test/status",
                 "interval": 60, "failure_threshold": 2, "auto_incident_minutes": 5,
                 "degraded_ms": 500},
                {"id": "chat", "name": "Live chat", "kind": "tcp", "target": "chat.test:80",
                 "interval": 60, "failure_threshold": 1},
            ],
        },
        {"id": "other", "name": "Other", "components": [
            {"id": "phones", "name": "Phone line", "kind": "manual"}]},
    ]
}  # fmt: skip


class StatusWorld:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.clock = FakeClock(T0)
        self.bus = MemoryBus()
        self.service = StatusService(
            db, self.clock, public_url="https://status.test", page_name="aidpost"
        )
        # What each component's next check returns: ok, slow, or down.
        self.outcomes: dict[str, Outcome] = {}
        self.probers: list[Prober] = []
        self.prober = self.make_prober("p1")

    def make_prober(self, owner: str) -> Prober:
        async def checker(spec: Spec) -> Outcome:
            for comp_id, outcome in self.outcomes.items():
                if comp_id in spec.target:
                    return outcome
            return Outcome(True, 12.0, "ok")

        prober = Prober(self.service, self.bus, owner, checker=checker)
        self.probers.append(prober)
        return prober

    def set(
        self, component: str, ok: bool = True, ms: float = 10.0, degraded: bool = False
    ) -> None:
        self.outcomes[component] = Outcome(ok, ms if ok else None, "scripted", degraded)

    async def run(self, minutes: int, step: int = 60) -> None:
        """Let ``minutes`` pass with the prober ticking every ``step`` seconds."""
        for _ in range(minutes * 60 // step):
            self.clock.advance(step)
            await self.prober.tick()

    async def published(self, type_: str | None = None) -> list[dict[str, Any]]:
        async with self.db.session() as session:
            rows = (await session.execute(select(outbox).order_by(outbox.c.seq))).all()
        return [
            {"type": r.type, **(r.data if isinstance(r.data, dict) else json.loads(r.data))}
            for r in rows
            if type_ is None or r.type == type_
        ]

    async def status(self, component: str) -> str:
        return (await self.service.component(component)).status


@pytest.fixture
async def world(databases: Databases) -> AsyncIterator[StatusWorld]:
    db = Database(databases.urls["status"])
    await upgrade(db, "status")
    w = StatusWorld(db)
    await w.service.sync(parse(CONFIG))
    yield w
    for prober in w.probers:  # its side tasks (tallies, webhooks) must not outlive the loop
        await prober.stop()
    await db.dispose()
