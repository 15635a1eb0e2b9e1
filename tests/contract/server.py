"""A real ``aidpost serve`` process on a free loopback port, for black-box tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aidpost.cluster import free_port, wait_for_status

PIDS: dict[str, int] = {}  # base URL -> process id, for tests that stop or kill it


@contextmanager
def serve(data_dir: Path, env: dict[str, str] | None = None, *args: str) -> Iterator[str]:
    port = free_port()
    full_env = {
        **os.environ,
        "AIDPOST_DATA_DIR": str(data_dir),
        "AIDPOST_AUTH_ARGON2_MEMORY_KIB": "1024",
        "AIDPOST_AUTH_ARGON2_TIME_COST": "1",
        **(env or {}),
    }
    log = (data_dir / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "aidpost.cli", "serve", "--port", str(port), *args],
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def alive() -> None:
            if proc.poll() is not None:
                raise RuntimeError((data_dir / "server.log").read_text()[-3000:])

        wait_for_status(base, 60, alive)
        PIDS[base] = proc.pid
        yield base
    finally:
        PIDS.pop(base, None)
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def seed_demo(env: dict[str, str], data_dir: Path) -> None:
    """``aidpost demo`` on the given databases and bus, as its own process."""
    done = subprocess.run(
        [sys.executable, "-m", "aidpost.cli", "demo"],
        env={**os.environ, **env, "AIDPOST_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
