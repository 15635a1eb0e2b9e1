"""Database engines: async SQLAlchemy on SQLite (the embedded default) or PostgreSQL.

SQLite connections get WAL, foreign keys and a busy timeout on every connection, so the
embedded mode behaves like the production one where it matters (cascades, concurrency).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, TypeDecorator, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SQLITE_BUSY_TIMEOUT_MS = 10_000
# A pooled PostgreSQL connection idle this long is pinged before use (a server restarted
# meanwhile would otherwise fail the request that gets it). SQLAlchemy's pre-ping does it at
# every checkout, and on asyncpg a ping is three round trips (BEGIN, ";", ROLLBACK): as
# much as the rest of a consumer's batch of messages. A connection used a moment ago is
# not pinged; if the server went away in that moment, the request fails (503, see
# ``errors``) and the pool drops every connection older than the failure.
PING_AFTER_IDLE_SECONDS = 2.0
# Every execution of a prepared statement planned for the tables as they are then. asyncpg
# keeps a connection's statements prepared, and PostgreSQL's default turns one into a
# generic plan after five runs and keeps it: a plan made while a table was small (a fresh
# database; statistics never gathered, or not since it grew) stays a sequential scan, or a
# probe of the wrong index, as the table grows. The messenger's batch of sends read every
# message that way, 6.7 ms a batch after 27 s of 2,000 messages/s; with generic plans of
# its index probes, every message of the chat (docs/performance.md). Planning again costs
# well under a millisecond per statement, a batch's, not a message's.
CUSTOM_PLANS = {"plan_cache_mode": "force_custom_plan"}
# Constraint names that are the same on every backend (migrations refer to them).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """Create an async engine; for SQLite make sure the folder exists and set pragmas."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"echo": echo}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    else:
        kwargs.update(pool_size=10, max_overflow=20)
        if parsed.get_driver_name() == "asyncpg":
            kwargs["connect_args"] = {"server_settings": CUSTOM_PLANS}
    engine = create_async_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        event.listen(engine.sync_engine, "checkin", _checked_in)
        event.listen(engine.sync_engine, "checkout", _ping_if_idle)
    return engine


def _checked_in(_dbapi_connection: Any, record: Any) -> None:
    if record is not None:
        record.info["checked_in"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """Ping a connection that waited in the pool (a new one, or one used a moment ago, is
    not); for a dead one the pool connects that entry anew (SQLAlchemy's
    ``DisconnectionError``)."""
    last = record.info.get("checked_in")
    if last is None or time.monotonic() - last < PING_AFTER_IDLE_SECONDS:
        return
    try:
        dbapi_connection.ping()
    except Exception as exc:
        raise DisconnectionError("pooled connection is gone") from exc


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
    # SQLite's own lower() folds ASCII only; text search must find "ŻÓŁW" for "żółw" too.
    dbapi_connection.create_function("lower", 1, _lower, deterministic=True)


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


class Database:
    """An engine and its session factory, built once per component."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite lets one writer in at a time and makes the others poll for the lock, which
        # is unfair: a busy writer (the messenger's consumer) can starve another (its queue)
        # for seconds. Writers of this process queue here instead, first come first served.
        # (Processes sharing one SQLite file still meet at SQLite's lock.)
        self._writers: asyncio.Lock | None = asyncio.Lock() if is_sqlite(url) else None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose work commits on success and rolls back on any error.

        On SQLite, one transaction of this process at a time (never open one inside
        another on the same database: it would wait for itself)."""
        if self._writers is None:
            async with self.sessionmaker() as session, session.begin():
                yield session
            return
        async with self._writers, self.sessionmaker() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(dt.UTC)

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)
