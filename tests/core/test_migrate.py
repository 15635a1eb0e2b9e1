"""Migrations across releases: a database a newer release migrated keeps the older release
serving (rolling deploys, roll-backs), and ``aidpost migrate`` applies every component's."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from aidpost.cli import main
from aidpost.core.db import Database
from aidpost.core.migrate import at_head, upgrade, version_table


async def test_a_database_past_this_codes_head_is_left_alone_and_ready(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'status.db'}")
    try:
        await upgrade(db, "status")
        assert await at_head(db, "status")
        # A newer release added a revision this code does not know.
        async with db.engine.begin() as conn:
            await conn.execute(text(f"UPDATE {version_table('status')} SET version_num = 'f00d'"))
        await upgrade(db, "status")  # the older release (re)starting: no error, nothing done
        assert await at_head(db, "status")
        async with db.engine.connect() as conn:
            rev = await conn.scalar(text(f"SELECT version_num FROM {version_table('status')}"))
        assert rev == "f00d"
        # Behind is still not ready: this code's migrations must run first.
        async with db.engine.begin() as conn:
            await conn.execute(text(f"DELETE FROM {version_table('status')}"))
        assert not await at_head(db, "status")
    finally:
        await db.dispose()


def test_aidpost_migrate_brings_every_database_to_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AIDPOST_DATA_DIR", str(tmp_path))
    assert main(["migrate"]) == 0
    out = capsys.readouterr().out
    assert out.count("at head") == 8  # six histories, auth's realm tables in two realms
    assert {p.name for p in tmp_path.glob("*.db")} == {
        f"{c}.db" for c in ("auth", "organizer", "participant", "messenger", "mailer", "status")
    }
    assert main(["migrate", "--component", "status"]) == 0
    assert main(["migrate", "--component", "nonsense"]) == 2
