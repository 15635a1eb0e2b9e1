"""Alembic, one history per component, applied programmatically at start.

Each component keeps its revisions in ``aidpost/<component>/migrations`` and its own version
table (``alembic_version_<history>``), so histories can share a database file without
stepping on each other (auth's credential tables live in each realm's database).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, text

from aidpost.core.db import Database

if TYPE_CHECKING:
    from aidpost.core.settings import Settings


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
    """Bring ``db`` to the head of ``history`` ("organizer", "auth:realm_migrations", ...).

    A database already past this code's head (a newer release migrated it; this process is
    an older one still running, or rolled back to) is left as it is: migrations are written
    so that the release before them still works on the migrated schema (expand, then
    contract a release later; docs/deployment.md)."""

    def _run(connection: Connection) -> None:
        # At head (every start but the first after a release) there is nothing to run.
        if _state(connection, history) == "behind":
            command.upgrade(_config(history, connection), "head")

    async with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Replicas may start together: one migrates, the others wait and find it done.
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(history)})
        await conn.run_sync(_run)


def _lock_key(history: str) -> int:
    return int.from_bytes(hashlib.sha256(history.encode()).digest()[:8], "big", signed=True)


def _state(connection: Connection, history: str) -> str:
    """Where the schema stands for this code: "head"; "behind" (this code has migrations to
    apply); or "ahead" (it carries revisions this code does not know: a newer release's)."""
    script = ScriptDirectory.from_config(_config(history))
    opts: dict[str, Any] = {"version_table": version_table(history)}
    current = set(MigrationContext.configure(connection, opts=opts).get_current_heads())
    if current == set(script.get_heads()):
        return "head"
    known = {rev.revision for rev in script.walk_revisions()}
    return "ahead" if current - known else "behind"


async def at_head(db: Database, history: str) -> bool:
    """Whether the schema is at this code's head or past it (ready to serve)."""
    async with db.engine.connect() as conn:
        return await conn.run_sync(lambda c: _state(c, history) != "behind")


REALM = "auth:realm_migrations"


def plan(settings: Settings, components: Sequence[str]) -> list[tuple[str, str]]:
    """(database URL, history) pairs that ``components`` migrate at start, in their order."""
    steps = {
        "auth": [
            (settings.auth_db, "auth"),
            (settings.organizer_db, REALM),
            (settings.participant_db, REALM),
        ],
        "organizer": [(settings.organizer_db, "organizer"), (settings.organizer_db, REALM)],
        "participant": [(settings.participant_db, "participant"), (settings.participant_db, REALM)],
        "messenger": [(settings.messenger_db, "messenger")],
        "mailer": [(settings.mailer_db, "mailer")],
        "status": [(settings.status_db, "status")],
    }
    out: list[tuple[str, str]] = []
    for component in components:
        for step in steps.get(component, []):
            if step not in out:
                out.append(step)
    return out


async def migrate(settings: Settings, components: Sequence[str]) -> list[str]:
    """Bring the databases of ``components`` to head (``aidpost migrate``); one line each."""
    done = []
    for url, history in plan(settings, components):
        db = Database(url)
        try:
            await upgrade(db, history)
        finally:
            await db.dispose()
        done.append(f"{history} at head on {db.engine.url.render_as_string(hide_password=True)}")
    return done
