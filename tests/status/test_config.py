"""What the status page watches: a components file checked at start, or a list derived
from the process's settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aidpost.core.settings import Settings
from aidpost.status.config import ConfigError, derived, load

GOOD = {"groups": [{"id": "g", "name": "G", "components": [
    {"id": "api", "name": "API", "kind": "http", "target": "http://x/status"}]}]}  # fmt: skip


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "at (top level): 'groups' is a required property"),
        ({"groups": [{"id": "G!", "name": "G", "components": []}]}, "at groups/0/id"),
        (
            {
                "groups": [
                    {
                        "id": "g",
                        "name": "G",
                        "components": [{"id": "a", "name": "A", "kind": "smtp"}],
                    }
                ]
            },
            "at groups/0/components/0/kind",
        ),
        (
            {
                "groups": [
                    {
                        "id": "g",
                        "name": "G",
                        "components": [{"id": "a", "name": "A", "kind": "tcp"}],
                    }
                ]
            },
            "component 'a' needs a target",
        ),
        ({"groups": [GOOD["groups"][0], {**GOOD["groups"][0], "id": "h"}]}, "used twice"),
        ({"groups": [{**GOOD["groups"][0], "extra": 1}]}, "Additional properties"),
    ],
)
def test_a_bad_file_is_refused_with_where_and_why(
    tmp_path: Path, data: object, message: str
) -> None:
    path = tmp_path / "components.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)


def test_unreadable_files(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text('{"groups": ')
    with pytest.raises(ConfigError, match="not JSON"):
        load(tmp_path / "broken.json")
    with pytest.raises(ConfigError, match="cannot be read"):
        load(tmp_path / "missing.json")
    (tmp_path / "good.json").write_text(json.dumps(GOOD))
    [group] = load(tmp_path / "good.json")
    assert [c.id for c in group.components] == ["api"]


def test_derived_from_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIDPOST_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AIDPOST_ORGANIZER_DATABASE_URL", "postgresql+asyncpg://u@db1:5433/o")
    monkeypatch.setenv("AIDPOST_PARTICIPANT_DATABASE_URL", "postgresql+asyncpg://u@db2/p")
    monkeypatch.setenv("AIDPOST_BUS_URL", "redis://cache:6380/0")
    monkeypatch.setenv("AIDPOST_MAILER_TRANSPORT_URL", "smtps://user:pw@mail.example")
    monkeypatch.setenv("AIDPOST_PORT", "9000")
    groups = derived(Settings(), ("auth", "organizer", "status"))
    services, servers = groups
    assert [c.id for c in services.components] == ["sign-in", "organizer-api", "bus"]
    assert {c.target for c in services.components} == {"http://127.0.0.1:9000/status"}
    assert services.components[1].expect == {"check": "organizer_db"}
    assert sorted((c.id, c.target) for c in servers.components) == [
        ("postgresql-db1-5433", "db1:5433"),
        ("postgresql-db2-5432", "db2:5432"),
        ("redis", "cache:6380"),
        ("smtp", "mail.example:465"),
    ]
