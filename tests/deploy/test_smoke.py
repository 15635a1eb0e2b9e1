"""deploy/smoke.py, run as CI runs it, against a real ``aidpost serve`` and against failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from aidpost.cluster import free_port
from tests.contract.server import serve

SMOKE = Path(__file__).resolve().parents[2] / "deploy" / "smoke.py"
COMMIT = "5ca1ab1e0ddba11c0ffee0ddba11b0a710cafe42"
SUPERADMIN = ("superadmin@aidpost.example", "superadmin-password-dev")
FAST = ("--interval", "0.2", "--retries", "0")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # Each run's wrong-password checks count towards the sign-in throttle of this address
    # (10 in 15 minutes by default); these runs together make more.
    env = {"AIDPOST_GIT_COMMIT": COMMIT, "AIDPOST_AUTH_THROTTLE_ATTEMPTS": "1000"}
    with serve(tmp_path_factory.mktemp("smoke"), env) as base:
        yield base


def smoke(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AIDPOST_SMOKE_")}
    return subprocess.run(
        [sys.executable, str(SMOKE), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **(env or {})},
        check=False,
    )


def lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    return done.stdout.strip().splitlines()


def test_passes_against_the_deployed_commit(server: str) -> None:
    done = smoke(server, "--expect-commit", COMMIT, *FAST)
    assert done.returncode == 0, done.stdout + done.stderr
    out = lines(done)
    assert out[-1].startswith("smoke test passed: 13 checks")
    checks = out[1:-1]
    assert all(line.startswith("ok ") for line in checks), checks
    # one line per component's route, each with its time
    for route in (
        "GET /version: version 0.1.0, commit " + COMMIT,
        "GET /status: ready",
        "/auth-api/.well-known/jwks.json",
        "POST /organizer-api/auth/sign-in (wrong password): 400 'invalid email or password'",
        "POST /participant-api/auth/sign-in (wrong password): 401 'invalid email or password'",
        "GET /organizer-api/profile (no token): 403",
        "GET /participant-api/events (no token): 401",
        "GET /messenger-api/agency/chats (no token): 401",
        "WebSocket /messenger-api/connect: upgraded, refused a bad token with 1008",
        "GET /mailer-api/templates (no token): 403",
        "GET /statuspage/api/v2/summary.json",
        "GET /console/sign-in: 200 HTML",
        "GET /app: 303 to /app/sign-in",
    ):
        assert sum(route in line for line in checks) == 1, (route, checks)
    assert all(line.split()[1].endswith("s") for line in checks)


def test_an_abbreviated_commit_matches(server: str) -> None:
    done = smoke(server, "--expect-commit", COMMIT[:7], *FAST)
    assert done.returncode == 0, done.stdout + done.stderr
    assert lines(done)[1].startswith("ok ") and COMMIT in lines(done)[1]


def test_fails_on_another_commit_after_the_deadline(server: str) -> None:
    started = time.monotonic()
    done = smoke(server, "--expect-commit", "0" * 40, "--deadline", "1.5", *FAST)
    assert done.returncode == 1
    assert time.monotonic() - started < 15
    last = lines(done)[-1]
    assert last.startswith("FAIL ") and "GET /version" in last, done.stdout
    assert f"commit is '{COMMIT}', expected '{'0' * 40}'" in last
    # it waited, saying once what for, and did not go on to the other checks
    assert sum(line.startswith("wait ") for line in lines(done)) == 1
    assert not any("/status" in line for line in lines(done))


def test_fails_where_nothing_listens() -> None:
    done = smoke(f"http://127.0.0.1:{free_port()}", "--deadline", "1", *FAST)
    assert done.returncode == 1
    last = lines(done)[-1]
    assert last.startswith("FAIL ") and "GET /version" in last and "ConnectError" in last


def test_signs_in_for_real_with_the_password_from_the_environment(server: str) -> None:
    email, password = SUPERADMIN
    done = smoke(server, "--email", email, *FAST, env={"AIDPOST_SMOKE_PASSWORD": password})
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        "POST /organizer-api/auth/sign-in (real): signed in, organizer profile read"
        in (lines(done)[-2])
    )
    assert password not in done.stdout + done.stderr


def test_a_wrong_password_fails_the_real_sign_in(server: str) -> None:
    email, _ = SUPERADMIN
    done = smoke(server, "--email", email, *FAST, env={"AIDPOST_SMOKE_PASSWORD": "x" * 20})
    assert done.returncode == 1
    last = lines(done)[-1]
    assert last.startswith("FAIL ") and "(real): 400 'invalid email or password'" in last


def test_skips_the_websocket_check_without_websockets(server: str, tmp_path: Path) -> None:
    (tmp_path / "websockets").mkdir()
    (tmp_path / "websockets" / "__init__.py").write_text("raise ImportError('hidden')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    done = smoke(server, "--expect-commit", COMMIT, *FAST, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    (skipped,) = (line for line in lines(done) if line.startswith("skip "))
    assert "WebSocket /messenger-api/connect: the websockets package is not installed" in skipped


class NotReady(BaseHTTPRequestHandler):
    """An edge whose processes run (``/version``) while their database is down."""

    def do_GET(self) -> None:
        if self.path == "/version":
            body: dict[str, object] = {"version": "0.1.0", "commit": COMMIT, "buildTime": "unknown"}
            status = 200
        else:
            body = {"ready": False, "checks": {"organizer_db": {"ok": False}, "bus": {"ok": True}}}
            status = 503
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_fails_when_not_ready_and_names_what_fails() -> None:
    edge = ThreadingHTTPServer(("127.0.0.1", 0), NotReady)
    threading.Thread(target=edge.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{edge.server_address[1]}"
        done = smoke(url, "--expect-commit", COMMIT, "--deadline", "1", *FAST)
    finally:
        edge.shutdown()
        edge.server_close()
    assert done.returncode == 1
    assert lines(done)[1].startswith("ok ")
    last = lines(done)[-1]
    assert last.startswith("FAIL ") and "GET /status: 503, not ready: organizer_db failing" in last
