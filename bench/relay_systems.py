"""The systems ``bench/relay.py`` compares, started and stopped as process groups, and the
CPU they spend. Runs in ``bench/.venv``; aidpost's processes run from the project's venv.

Each system is two server processes on loopback (side ``a`` of every pair on the first,
side ``b`` on the second) relaying through Redis:

* ``channels``: ``bench/peers/channels_relay`` under two daphne processes, channels_redis's
  ``RedisChannelLayer`` on Redis database 5;
* ``socketio``: ``bench/peers/socketio_relay.py`` under two uvicorn processes (uvloop,
  httptools, websockets), ``AsyncRedisManager`` (Redis pub/sub; its keys, none, on database 6);
* ``aidpost``: ``bench/relay_cluster.py`` (two gateways, the consumers, auth, organizer and
  participant, on PostgreSQL and Redis database 4), which also needs the pairs' chats made:
  per pair a staff member created by the demo agency's owner, a participant who signs up and
  asks for help, and the staff member's ``start_chat``.

Every server runs in a session of its own; stopping sends SIGTERM to the leader, waits,
then SIGKILLs whatever is left of the group. Redis is never flushed: only keys under a
system's own prefix on its own database are deleted, before and after a run.

CPU is read from ``/proc/<pid>/stat`` (user + system, all threads) for each server
process by role, for Redis (its ``process_id``), for every process owned by the
``postgres`` user (the server and all its backends, so other users' queries count too, and a
backend that exits within the window is missed), and for the whole machine from
``/proc/stat``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import pwd
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import redis
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    HOST,
    PASSWORD,
    bearer,
    delete_redis_keys,
    expect,
    free_port,
    log,
    process_cpu_seconds,
    sign_in,
)
from relay_load import PairSpec

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PEERS = BENCH / "peers"
CLK_TCK = os.sysconf("SC_CLK_TCK")
START_TIMEOUT_S = 240.0
STOP_TIMEOUT_S = 90.0
DEMO_OWNER = ("owner@demo.aidpost.example", "demo-password-1234")


# -- processes ---------------------------------------------------------------------------------


@dataclass
class Spawned:
    """A server process leading its own session, with its output in a log file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    stdout_pipe: bool = False
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.argv,
            env={**os.environ, **self.env},
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if self.stdout_pipe else log_file,
            stderr=log_file,
            start_new_session=True,
        )
        log_file.close()

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> None:
        assert self.popen is not None
        if self.popen.poll() is not None:
            raise RuntimeError(f"{self.name} exited ({self.popen.returncode}); see {self.log_path}")

    def stop(self) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log(f"{self.name} did not stop within {STOP_TIMEOUT_S:.0f} s; killing it")
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # whatever is left of its group
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)
        if self.popen.stdout is not None:
            self.popen.stdout.close()


def wait_listening(process: Spawned, port: int, seconds: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        process.alive()
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return
        time.sleep(0.2)
    raise TimeoutError(f"{process.name} not listening on {port} within {seconds:.0f} s")


def read_line(process: Spawned, seconds: float = START_TIMEOUT_S) -> str:
    """The first line a process prints on its stdout (a pipe)."""
    assert process.popen is not None and process.popen.stdout is not None
    stream = process.popen.stdout
    deadline = time.monotonic() + seconds
    buffer = b""
    while b"\n" not in buffer:
        process.alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{process.name} not ready within {seconds:.0f} s")
        ready, _, _ = select.select([stream], [], [], 0.5)
        if ready:
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                process.alive()
            buffer += chunk
    return buffer.decode().splitlines()[0]


def tail(path: Path, lines: int = 12) -> None:
    """The end of a server's log on stderr, if it wrote anything."""
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines()[-lines:]:
            log(f"{path.stem}: {line[:300]}")


def versions(*packages: str) -> dict[str, str]:
    found = {}
    for package in packages:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[package] = metadata.version(package)
    return found


# -- CPU ---------------------------------------------------------------------------------------


def postgres_cpu() -> dict[int, float]:
    """CPU by pid of every process owned by the ``postgres`` user (server and backends)."""
    try:
        uid = pwd.getpwnam("postgres").pw_uid
    except KeyError:
        return {}
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == uid:
                    found[int(entry.name)] = process_cpu_seconds(int(entry.name))
    return {pid: cpu for pid, cpu in found.items() if not math.isnan(cpu)}


def postgres_commits() -> float:
    """Transactions committed on the local PostgreSQL server since its statistics were reset
    (all databases; only the messenger's commit during a relay step), or NaN without psql."""
    try:
        done = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-Atc",
             "SELECT sum(xact_commit) FROM pg_stat_database"],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
        return float(done.stdout.strip())
    except (OSError, subprocess.SubprocessError, ValueError):
        return math.nan


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, all cores, since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(values[:8])  # user nice system idle iowait irq softirq steal
    idle = values[3] + values[4]
    return (total - idle) / CLK_TCK, total / CLK_TCK


def redis_pid(redis_url: str) -> int | None:
    client = redis.Redis.from_url(redis_url)
    try:
        pid = client.info("server").get("process_id")
        return int(pid) if pid else None
    except redis.RedisError:
        return None
    finally:
        client.close()


@dataclass
class CpuSample:
    roles: dict[str, float]
    postgres: dict[int, float]
    machine: tuple[float, float]
    commits: float = math.nan


@dataclass
class CpuProbe:
    """CPU seconds by role (lists of pids), Redis, PostgreSQL and the machine."""

    roles: dict[str, list[int]]
    redis: int | None

    def sample(self) -> CpuSample:
        roles = {
            role: sum(process_cpu_seconds(pid) for pid in pids) for role, pids in self.roles.items()
        }
        roles["redis"] = process_cpu_seconds(self.redis) if self.redis else math.nan
        return CpuSample(roles, postgres_cpu(), machine_cpu(), postgres_commits())

    @staticmethod
    def delta(before: CpuSample, after: CpuSample) -> dict[str, float]:
        """CPU seconds between two samples by role, plus "postgres" (backends that ended in
        between are missed; those that started count whole) and "machine_busy"/"_total"."""
        spent = {role: after.roles[role] - before.roles[role] for role in before.roles}
        pg = [cpu - before.postgres.get(pid, 0.0) for pid, cpu in after.postgres.items()]
        spent["postgres"] = sum(pg) if after.postgres else math.nan
        spent["machine_busy"] = after.machine[0] - before.machine[0]
        spent["machine_total"] = after.machine[1] - before.machine[1]
        spent["postgres_commits"] = after.commits - before.commits  # a count, not seconds
        return spent


# -- the systems -------------------------------------------------------------------------------


@dataclass
class System:
    """Two server processes (or aidpost's cluster) and how to reach them."""

    name: str
    redis_url: str
    logs: Path
    servers: list[Spawned] = field(default_factory=list)
    bases: tuple[str, str] = ("", "")
    roles: dict[str, list[int]] = field(default_factory=dict)
    prefix: str = ""

    def start(self) -> None:
        raise NotImplementedError

    async def prepare(self, pairs: int) -> list[PairSpec]:
        return [PairSpec(pair) for pair in range(pairs)]

    def versions(self) -> dict[str, str]:
        return {}

    def probe(self) -> CpuProbe:
        return CpuProbe(self.roles, redis_pid(self.redis_url))

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()
            tail(server.log_path)
        if self.prefix:
            delete_redis_keys(self.redis_url, self.prefix)

    def _two(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        """Start two servers of ``argv`` (``{port}`` filled in) and wait for both."""
        if self.prefix:
            delete_redis_keys(self.redis_url, self.prefix)
        ports = [free_port(), free_port()]
        for i, port in enumerate(ports):
            server = Spawned(
                f"{self.name}{i + 1}",
                [arg.format(port=port) for arg in argv],
                env,
                cwd,
                self.logs / f"{self.name}{i + 1}.log",
            )
            self.servers.append(server)
            server.start()
        for server, port in zip(self.servers, ports, strict=True):
            wait_listening(server, port)
        self.bases = (f"ws://{HOST}:{ports[0]}", f"ws://{HOST}:{ports[1]}")
        self.roles = {"servers": [server.pid for server in self.servers]}


class Channels(System):
    def start(self) -> None:
        self.prefix = "aidpost-relaybench-channels:"  # as in channels_relay/settings.py
        daphne = str(Path(sys.executable).with_name("daphne"))
        argv = [daphne, "-v", "0", "-b", HOST, "-p", "{port}", "channels_relay.asgi:application"]
        env = {
            "DJANGO_SETTINGS_MODULE": "channels_relay.settings",
            "RELAY_REDIS_URL": self.redis_url,
            "PYTHONPATH": str(PEERS),
        }
        self._two(argv, env, PEERS)

    def versions(self) -> dict[str, str]:
        return versions("django", "channels", "channels-redis", "daphne", "twisted", "redis")


class SocketIO(System):
    def start(self) -> None:
        uvicorn = str(Path(sys.executable).with_name("uvicorn"))
        argv = [uvicorn, "socketio_relay:app", "--host", HOST, "--port", "{port}",
                "--log-level", "warning", "--no-access-log"]  # fmt: skip
        self._two(argv, {"RELAY_REDIS_URL": self.redis_url}, PEERS)

    def versions(self) -> dict[str, str]:
        return versions("python-socketio", "python-engineio", "uvicorn", "uvloop", "websockets",
                        "redis")  # fmt: skip


@dataclass
class Aidpost(System):
    python: Path = ROOT / ".venv" / "bin" / "python"
    consumers: int = 2
    urls: dict[str, str] = field(default_factory=dict)

    def start(self) -> None:
        base, _, db = self.redis_url.rpartition("/")
        argv = [str(self.python), str(BENCH / "relay_cluster.py"), "--gateways", "2",
                "--consumers", str(self.consumers), "--redis", base, "--redis-db", db]  # fmt: skip
        cluster = Spawned("aidpost", argv, {}, ROOT, self.logs / "aidpost.log", stdout_pipe=True)
        self.servers.append(cluster)
        cluster.start()
        described = json.loads(read_line(cluster))
        processes = described["processes"]
        self.urls = {p["name"]: p["url"] for p in processes}
        self.bases = (ws(self.urls["gateway1"]), ws(self.urls["gateway2"]))
        self.roles = {"gateways": [], "consumers": [], "other": [cluster.pid]}
        for p in processes:
            self.roles[role_of(p["name"])].append(p["pid"])

    async def prepare(self, pairs: int) -> list[PairSpec]:
        return await make_chats(self.urls, pairs)

    def versions(self) -> dict[str, str]:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        return {"aidpost": commit or "unknown"}


def role_of(name: str) -> str:
    for role in ("gateway", "consumer"):
        if name.startswith(role):
            return role + "s"
    return "other"  # auth, organizer, participant: setup only


def ws(url: str) -> str:
    return url.replace("http://", "ws://")


def make_system(name: str, redis_base: str, logs: Path, **options: Any) -> System:
    if name == "channels":
        return Channels(name, f"{redis_base}/5", logs)
    if name == "socketio":
        return SocketIO(name, f"{redis_base}/6", logs)
    return Aidpost(name, f"{redis_base}/4", logs, **options)


# -- aidpost's pairs ---------------------------------------------------------------------------


async def new_staff(http: httpx.AsyncClient, urls: dict[str, str], owner: str, n: int) -> str:
    email = f"relay-staff-{n}@bench.aidpost.example"
    body = {"email": email, "password": PASSWORD, "confirmPassword": PASSWORD,
            "firstName": "Relay", "lastName": f"Staff {n}", "phoneNumber": "+48600100200",
            "role": 4}  # fmt: skip
    url = urls["organizer"] + "/organizer-api/agency/users"
    expect(await http.post(url, json=body, headers=bearer(owner)), 201, f"create {email}")
    return await sign_in(http, "organizer-api", email, PASSWORD)


def participant_email(n: int) -> str:
    return f"relay-participant-{n}@bench.aidpost.example"


async def new_participant(http: httpx.AsyncClient, n: int) -> str:
    body = {"email": participant_email(n), "password": PASSWORD,
            "confirmPassword": PASSWORD, "phoneNumber": "+48100200300"}  # fmt: skip
    response = await http.post("/participant-api/auth/sign-up", json=body)
    token: str = expect(response, 201, f"sign up {n}")["token"]
    return token


async def ask_help(http: httpx.AsyncClient, urls: dict[str, str], token: str, event: int) -> None:
    url = urls["participant"] + "/participant-api/chat-requests"
    body = {"eventId": event, "description": "relay benchmark"}
    expect(await http.post(url, json=body, headers=bearer(token)), 200, "chat request")


async def start_chat(gateway: str, staff: str, seconds: float = 60.0) -> tuple[str, str]:
    """The staff member takes the oldest waiting request: (chat id, participant's email)."""
    async with websockets.connect(gateway + "/messenger-api/connect", compression=None) as sock:
        await sock.send(json.dumps({"Authorization": f"Bearer {staff}"}))
        async with asyncio.timeout(seconds):
            await sock.send(json.dumps({"type": "start_chat", "payload": ""}))
            while True:
                frame = json.loads(await sock.recv())
                if frame.get("type") == "new_chat":
                    chat = frame["payload"]
                    return str(chat["id"]), str(chat["participant"]["email"])
                if frame.get("type") == "info":  # no request in the queue yet
                    await asyncio.sleep(0.05)
                    await sock.send(json.dumps({"type": "start_chat", "payload": ""}))


async def make_chats(urls: dict[str, str], pairs: int) -> list[PairSpec]:
    """Per pair a participant who asks for help and a staff member who takes a request;
    a pair is a staff member and the participant whose request they took."""
    started = time.monotonic()
    limit = asyncio.Semaphore(8)
    # Relative paths go to auth (sign-in, sign-up); the others are absolute.
    async with httpx.AsyncClient(base_url=urls["auth"], timeout=60) as http:
        owner = await sign_in(http, "organizer-api", *DEMO_OWNER)
        events = urls["organizer"] + "/organizer-api/agency/events"
        event = int(expect(await http.get(events, headers=bearer(owner)), 200, "events")[0]["id"])

        async def participant(n: int) -> tuple[str, str]:
            async with limit:
                token = await new_participant(http, n)
                await ask_help(http, urls, token, event)
                return participant_email(n), token

        async def staff(n: int) -> str:
            async with limit:
                return await new_staff(http, urls, owner, n)

        participants = dict(await asyncio.gather(*(participant(n) for n in range(pairs))))
        staff_tokens = await asyncio.gather(*(staff(n) for n in range(pairs)))

    async def take(n: int, token: str) -> PairSpec:
        async with limit:
            chat, email = await start_chat(ws(urls["gateway2"]), token)
        return PairSpec(n, chat, (participants[email], token))

    specs = await asyncio.gather(*(take(n, token) for n, token in enumerate(staff_tokens)))
    log(f"aidpost: {pairs} pairs with their chats in {time.monotonic() - started:.1f} s")
    return list(specs)
