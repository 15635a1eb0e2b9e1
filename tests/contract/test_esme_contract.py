"""ESME's published Organizer API contract (``shared/esme/organizer-api.yml``), as it is.

Every operation it lists exists under ``/organizer-api`` with the same method and success
status, and a schemathesis run from it, and one from aidpost's own OpenAPI, against a real
``aidpost serve`` process finds no server error.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from aidpost.app import create_app
from tests.conftest import (
    ON_CI,
    SUPERADMIN,
    Databases,
    fresh_databases,
    make_settings,
    sqlite_databases,
)
from tests.contract.server import serve

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = Path(
    os.environ.get("AIDPOST_ESME_CONTRACT", ROOT.parent / "shared" / "esme" / "organizer-api.yml")
)
EXAMPLES = os.environ.get("AIDPOST_FUZZ_EXAMPLES", "25")


def contract() -> dict[str, Any]:
    if not CONTRACT.exists():
        if ON_CI:
            pytest.fail(f"ESME contract not found at {CONTRACT}")
        pytest.skip("ESME contract not available")
    loaded: dict[str, Any] = yaml.safe_load(CONTRACT.read_text())
    return loaded


def test_every_esme_operation_is_served_with_its_success_status(tmp_path: Path) -> None:
    spec = contract()
    dbs = sqlite_databases(tmp_path)
    ours = create_app(make_settings(dbs, tmp_path)).openapi()["paths"]
    missing, wrong = [], []
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            mine = ours.get("/organizer-api" + path, {}).get(method)
            if mine is None:
                missing.append(f"{method.upper()} {path}")
                continue
            theirs = sorted(c for c in op.get("responses", {}) if c.startswith("2"))
            success = sorted(c for c in mine.get("responses", {}) if c.startswith("2"))
            if theirs and theirs != success:
                wrong.append(f"{method.upper()} {path}: ESME {theirs}, aidpost {success}")
    assert not missing, missing
    assert not wrong, wrong


def _schemathesis(
    schema: str, workdir: Path, token: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", schema,
        "--checks", "not_a_server_error",
        "--max-examples", EXAMPLES,
        "--seed", "20261122",
        "--header", f"Authorization: Bearer {token}",
        "--exclude-operation-id", "organizerSignOut",
        "--exclude-operation-id", "organizerChangePassword",
        "--exclude-operation-id", "deleteAgency",
        "--exclude-operation-id", "participantSignOut",
        "--exclude-operation-id", "participantChangePassword",
        "--exclude-operation-id", "participantDeleteProfile",
        "--exclude-path-regex", "(sign-out|change-password)$",
        "--request-timeout", "10",
        "--no-color",
        *extra,
    ]  # fmt: skip
    return subprocess.run(
        command, capture_output=True, text=True, timeout=1200, check=False, cwd=workdir
    )


@pytest.fixture
async def backend_env(backend: str, tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    """The server's databases: SQLite files or fresh PostgreSQL databases."""
    async for databases in fresh_databases(backend, tmp_path):
        yield _env(databases)


def _env(databases: Databases) -> dict[str, str]:
    return {
        "AIDPOST_AUTH_DATABASE_URL": databases.urls["auth"],
        "AIDPOST_ORGANIZER_DATABASE_URL": databases.urls["organizer"],
        "AIDPOST_PARTICIPANT_DATABASE_URL": databases.urls["participant"],
        "AIDPOST_RATE_LIMIT": "1000000/minute",
        "AIDPOST_AUTH_SUPERADMIN_EMAIL": SUPERADMIN[0],
        "AIDPOST_AUTH_SUPERADMIN_PASSWORD": SUPERADMIN[1],
    }


# Each spec and role once on PostgreSQL (production's database); the owner, who reaches the
# most writes, on SQLite too. (Every pair on both took seven minutes of CI for no finding
# that one backend alone had not made.)
PG = pytest.mark.postgres


@pytest.mark.parametrize(
    ("spec", "who", "backend"),
    [
        pytest.param("aidpost", "owner", "sqlite"),
        pytest.param("aidpost", "owner", "postgres", marks=PG),
        pytest.param("aidpost", "superadmin", "postgres", marks=PG),
        pytest.param("aidpost", "participant", "postgres", marks=PG),
        pytest.param("esme", "owner", "sqlite"),
        pytest.param("esme", "owner", "postgres", marks=PG),
        pytest.param("esme", "superadmin", "postgres", marks=PG),
    ],
)
def test_fuzzing_finds_no_server_error(
    tmp_path: Path, backend_env: dict[str, str], who: str, spec: str
) -> None:
    with serve(tmp_path, backend_env, "--demo") as base:
        realm = "participant" if who == "participant" else "organizer"
        if who == "superadmin":
            creds = {"email": SUPERADMIN[0], "password": SUPERADMIN[1]}
        else:
            creds = {"email": f"{who}@demo.aidpost.example", "password": "demo-password-1234"}
        r = httpx.post(base + f"/{realm}-api/auth/sign-in", json=creds, timeout=10)
        assert r.status_code == 200, r.text
        token = r.json()["token"]
        if spec == "aidpost":
            result = _schemathesis(base + "/openapi.json", tmp_path, token)
        else:
            contract()
            result = _schemathesis(str(CONTRACT), tmp_path, token, "--url", base + "/organizer-api")
        log = (tmp_path / "server.log").read_text()
    output = result.stdout[-6000:] + result.stderr[-3000:]
    assert result.returncode == 0, output
    assert '"status": 500' not in log, log[-3000:]
