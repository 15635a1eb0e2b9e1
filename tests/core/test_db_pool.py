"""Pooled PostgreSQL connections after the server dropped them: one idle a while is pinged
and replaced before use; one used a moment ago fails its one request with a 503 (not a
500), and the pool then lets every connection of before the failure go."""

from __future__ import annotations

import asyncio
import errno
import json
import socket

import asyncpg
import pytest
import redis.exceptions
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeout

from aidpost.core import db as db_mod
from aidpost.core.db import Database
from aidpost.core.errors import unhandled_error_handler
from tests.conftest import PG_URL, Databases


async def drop_connections(database: str) -> int:
    admin = await asyncpg.connect(PG_URL + "/postgres")
    try:
        killed = await admin.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
    finally:
        await admin.close()
    await asyncio.sleep(0.1)  # the server has closed them
    return len(killed)


async def one(db: Database) -> int:
    async with db.session() as session:
        return int((await session.execute(text("SELECT 1"))).scalar_one())


async def backend_pids(db: Database, n: int) -> set[int]:
    """Use ``n`` pooled connections at once; their server process ids."""

    async def pid() -> int:
        async with db.session() as session:
            found = int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())
            await asyncio.sleep(0.05)  # keep it while the others check theirs out
            return found

    return set(await asyncio.gather(*(pid() for _ in range(n))))


@pytest.mark.postgres
async def test_an_idle_connection_is_pinged_and_replaced(
    postgres: Databases, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_mod, "PING_AFTER_IDLE_SECONDS", 0.2)
    db = Database(postgres.urls["messenger"])
    try:
        before = await backend_pids(db, 3)
        assert await drop_connections(db.engine.url.database or "") == 3
        await asyncio.sleep(0.3)  # idle longer than the ping threshold
        assert await one(db) == 1  # the dead connection was found by the ping, not the query
        assert not (await backend_pids(db, 3)) & before
    finally:
        await db.dispose()


@pytest.mark.postgres
async def test_a_busy_connection_fails_one_request_then_the_pool_recovers(
    postgres: Databases,
) -> None:
    db = Database(postgres.urls["messenger"])
    try:
        assert db_mod.PING_AFTER_IDLE_SECONDS >= 1  # a connection used just now: no ping
        await backend_pids(db, 3)
        await drop_connections(db.engine.url.database or "")
        with pytest.raises(Exception) as failed:
            await one(db)
        response = await unhandled_error_handler(None, failed.value)  # type: ignore[arg-type]
        assert response.status_code == 503, failed.value
        assert response.headers["Retry-After"] == "1"
        body = json.loads(bytes(response.body))
        assert "database is unavailable" in json.dumps(body)
        # the pool let the other two dead connections go with the failed one
        for _ in range(5):
            assert await one(db) == 1
    finally:
        await db.dispose()


class Orig(Exception):
    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (RuntimeError("boom"), 500),
        # a query the database refused is a bug, not an outage
        (OperationalError("SELECT", {}, Orig("no such table: chats")), 500),
        (OperationalError("SELECT", {}, Orig("syntax error", "42601")), 500),
        (OperationalError("INSERT", {}, Orig("database is locked")), 503),
        (OperationalError("SELECT", {}, Orig("terminating connection", "57P01")), 503),
        (DBAPIError("SELECT", {}, Orig("the database system is starting up", "57P03")), 503),
        (ConnectionRefusedError(111, "Connect call failed"), 503),
        (TimeoutError(), 503),
        # out of connections: the server's, or the pool's
        (DBAPIError("connect", {}, Orig("sorry, too many clients already", "53300")), 503),
        (SQLAlchemyTimeout("QueuePool limit of size 5 overflow 10 reached"), 503),
        # the bus or hub
        (redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379."), 503),
        (redis.exceptions.TimeoutError("Timeout reading from socket"), 503),
        (redis.exceptions.ResponseError("WRONGTYPE Operation against a key"), 500),
        (redis.exceptions.AuthenticationError("invalid password"), 500),  # configuration
        # a database host restarting: not resolved, not reachable
        (socket.gaierror(-2, "Name or service not known"), 503),
        (OSError(errno.EHOSTUNREACH, "No route to host"), 503),
        (FileNotFoundError(errno.ENOENT, "no such file"), 500),
    ],
)
async def test_what_counts_as_the_database_away(error: Exception, status: int) -> None:
    response = await unhandled_error_handler(None, error)  # type: ignore[arg-type]
    assert response.status_code == status
