"""Fixtures of the mailer tests: a real SMTP server and a mailer world."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from aidpost.core.db import Database
from aidpost.core.migrate import upgrade
from tests.conftest import Databases
from tests.mailer.smtp import SmtpServer
from tests.mailer.world import World


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def world(databases: Databases, smtp: SmtpServer) -> AsyncIterator[World]:
    db = Database(databases.urls["mailer"])
    await upgrade(db, "mailer")
    w = World(db, smtp)
    await w.service().seed_templates()
    yield w
    await db.dispose()
