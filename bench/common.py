"""What the benchmark scripts share: the server they start, HTTP helpers, percentiles and
CPU accounting. Not a benchmark itself."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

HOST = "127.0.0.1"
SUPERADMIN = ("superadmin@bench.aidpost.example", "superadmin-password-for-bench")
PASSWORD = "bench-password-0123456789"  # ESME wants 16 to 128 characters
STARTUP_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


# -- the server --------------------------------------------------------------------------------


class Server:
    """``aidpost serve --demo`` as a child process with its own data directory."""

    def __init__(self, port: int, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.port = port
        self.data_dir = data_dir
        self.extra_env = env or {}
        self.base_url = f"http://{HOST}:{port}"
        self.log_path = data_dir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None

    def command(self) -> list[str]:
        script = Path(sys.executable).with_name("aidpost")
        base = [str(script)] if script.exists() else [sys.executable, "-m", "aidpost.cli"]
        return [*base, "serve", "--demo", "--host", HOST, "--port", str(self.port)]

    def start(self) -> None:
        env = {
            **os.environ,
            "AIDPOST_DATA_DIR": str(self.data_dir),
            "AIDPOST_RATE_LIMIT": "1000000/minute",
            "AIDPOST_AUTH_SUPERADMIN_EMAIL": SUPERADMIN[0],
            "AIDPOST_AUTH_SUPERADMIN_PASSWORD": SUPERADMIN[1],
        }
        # Database URLs from the caller's environment would point elsewhere: use SQLite files.
        for name in ("AUTH", "ORGANIZER", "PARTICIPANT", "MESSENGER", "MAILER", "STATUS"):
            env.pop(f"AIDPOST_{name}_DATABASE_URL", None)
        env.pop("AIDPOST_BUS_URL", None)
        env.update(self.extra_env)
        self._log_file = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.command(),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def wait_ready(self, client: httpx.AsyncClient) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with status {self.proc.returncode}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/status", timeout=2.0)).status_code == 200:
                    return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"server not ready within {STARTUP_TIMEOUT_S:.0f} s")

    def proc_status(self) -> dict[str, str]:
        """Fields of ``/proc/<pid>/status`` (VmRSS, VmHWM, Threads, ...)."""
        return process_status(self.pid)

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the server process, all threads."""
        return process_cpu_seconds(self.pid)

    def log_tail(self, lines: int = 10, width: int = 400) -> str:
        try:
            tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return "(no server log)"
        return "\n".join(line if len(line) <= width else line[:width] + " ..." for line in tail)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log(f"server did not stop within {STOP_TIMEOUT_S:.0f} s; killing it")
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


# -- HTTP --------------------------------------------------------------------------------------


def expect(response: httpx.Response, status: int, what: str) -> Any:
    if response.status_code != status:
        raise RuntimeError(f"{what}: HTTP {response.status_code} {response.text[:300]}")
    return response.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def sign_in(client: httpx.AsyncClient, api: str, email: str, password: str) -> str:
    body = {"email": email, "password": password}
    data = expect(await client.post(f"/{api}/auth/sign-in", json=body), 200, f"sign in {email}")
    token: str = data["token"]
    return token


# -- figures -----------------------------------------------------------------------------------


def percentile(ordered: list[float], share: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def process_status(pid: int) -> dict[str, str]:
    """Fields of ``/proc/<pid>/status`` (VmRSS, VmHWM, Threads, ...); empty once it is gone."""
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, all threads; NaN once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return math.nan
    parts = stat[stat.rindex(")") + 2 :].split()
    # After "pid (comm) ": state is field 3, so utime (14) and stime (15) are [11], [12].
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def client_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def timed_get(client: httpx.AsyncClient, path: str) -> float:
    """One GET in milliseconds; anything but 200 stops the benchmark."""
    t0 = time.perf_counter()
    r = await client.get(path)
    elapsed = (time.perf_counter() - t0) * 1000
    if r.status_code != 200:
        raise RuntimeError(f"{path}: HTTP {r.status_code} {r.text[:200]}")
    return elapsed


async def get_times(
    client: httpx.AsyncClient, path: str, requests: int, concurrency: int
) -> tuple[list[float], list[float], float]:
    """``requests`` GETs one after the other, then ``requests`` with ``concurrency`` at once:
    (sorted sequential times, sorted concurrent times, concurrent requests per second)."""
    sequential = sorted([await timed_get(client, path) for _ in range(requests)])
    limit = asyncio.Semaphore(concurrency)

    async def one() -> float:
        async with limit:
            return await timed_get(client, path)

    t0 = time.perf_counter()
    together = sorted(await asyncio.gather(*(one() for _ in range(requests))))
    return sequential, together, requests / (time.perf_counter() - t0)


def delete_redis_keys(url: str, prefix: str) -> int:
    """Delete the keys under ``prefix`` (and only those) from the Redis at ``url``."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
        return len(keys)
    finally:
        client.close()
