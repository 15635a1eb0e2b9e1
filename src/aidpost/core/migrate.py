"""Alembic, one history per component, applied programmatically at start.

Each component keeps its revisions in ``aidpost/<component>/migrations`` and its own version
table (``alembic_version_<history>``), so histories can share a database file without
stepping on each other (auth's credential tables live in each realm's database).
"""

from __future__ import annotations

import hashlib
from importlib.resources import files
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, text

from aidpost.core.db import Database


def _config(history: str, connection: Connection | None = None) -> Config:
    package, _, sub = history.partition(":")
    location = files(f"aidpost.{package}").joinpath(sub or "migrations")
    cfg = Config()
    cfg.set_main_option("script_location", str(location))
    cfg.attributes["connection"] = connection
    cfg.attributes["version_table"] = version_table(history)
    return cfg


def version_table(history: str) -> str:
    return "alembic_version_" + history.replace(":", "_")


def run_env(metadata: MetaData) -> None:
    """Body of every component's ``env.py``: run on the connection we were given."""
    from alembic import context

    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=context.config.attributes["version_table"],
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def upgrade(db: Database, history: str) -> None:
    """Bring ``db`` to the head of ``history`` ("organizer", "auth:realm_migrations", ...)."""

    def _run(connection: Connection) -> None:
        command.upgrade(_config(history, connection), "head")

    async with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Replicas may start together: one migrates, the others wait and find it done.
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(history)})
        await conn.run_sync(_run)


def _lock_key(history: str) -> int:
    return int.from_bytes(hashlib.sha256(history.encode()).digest()[:8], "big", signed=True)


async def at_head(db: Database, history: str) -> bool:
    def _check(connection: Connection) -> bool:
        script = ScriptDirectory.from_config(_config(history))
        opts: dict[str, Any] = {"version_table": version_table(history)}
        current = MigrationContext.configure(connection, opts=opts).get_current_heads()
        return set(current) == set(script.get_heads())

    async with db.engine.connect() as conn:
        return await conn.run_sync(_check)
