"""ESME's performance scenario against aidpost, measured further than ESME did.

ESME's test (``tests/performance`` there; ``docs/performance-tests``) runs one staff member
who sends ``start_chat`` every ``sci`` ms and never reads, and a loop that every ``cpi`` ms
signs a new participant up, asks for help and starts that participant's worker: connect to
the messenger, poll ``get_chats`` every ``smi`` ms (at most 10 times) until the chat is
there, then send a message every ``smi`` ms and read whatever arrives. The first error of
any kind ends the run; it reports the participants, the chats and the rate of messages
sent. This script does the same (same order of steps, same one-frame-per-poll reading,
same ten polls) with two differences, both reported:

* the staff socket reads: every participant message that reaches the staff member is
  counted and its end-to-end latency taken (the message carries its send time; sender and
  receiver are in this one process, one clock) — ESME's test measured neither;
* a run also ends, without error, at ``--max-participants`` or ``--max-seconds``, so that a
  run against a system that does not fail ends too.

Server: by default (``--shape one``) it starts its own ``aidpost serve --demo`` (one process,
SQLite, the in-memory bus: the embedded default) in a temporary directory, with the
per-address HTTP rate limit and the per-socket action limit lifted (every client here is
127.0.0.1, and the staff member presses start 100 times a second) and the log level at
WARNING. ``--shape cluster`` starts the production shape on this machine instead
(``aidpost.cluster.Cluster``, what ``aidpost cluster`` starts): auth, organizer,
participant, ``--consumers`` messenger consumers and ``--gateways`` messenger gateways, the
mailer, web and status, each its own process, behind HAProxy, on PostgreSQL databases created
for the run (``aidpost_esme_<run>_*``) and Redis under a bus prefix of the run's own, with
the demo data seeded by ``aidpost demo`` and the same lifted limits; at the end, even on an
error, Ctrl-C or SIGTERM, every process is stopped, the databases dropped and the run's Redis
keys deleted. ``--base URL`` runs against a server or cluster that is already up (``aidpost
cluster`` prints its URL); it must have the demo data (``aidpost demo``).

Output: one line per second while it runs (participants, chats, messages sent in the last
second, delivered to staff in the last second), then a summary: why it stopped, the
participants and chats then, the sent and delivered rates over the last 5 seconds (ESME's
figure is the plateau of the sent rate), the totals, latency p50/p99/max in ms, the
participants made per second with the round trips of their sign-up and help request (p50,
p99: ESME's loop makes one participant at a time, so these bound its rate), and the CPU
share of the server process and of this load generator (both on this machine's cores; when
the generator nears 100 % of a core it, not the server, is the limit). For the cluster the
server's share is every aidpost process together (and each one's, by name); Redis's (its
own account), HAProxy's, PostgreSQL's (every postgres process) and the whole machine's
(everything running, out of 2.0 on two cores) are given beside it: Redis and PostgreSQL are
shared with whatever else runs here, the machine's share shows whether anything did.

``--runs N`` repeats the run N times, each on a fresh server, and ends with the median and
the range of the main figures; ``--json PATH`` writes every run and the medians there (after
each run; ``bench/results/`` is the place, not tracked by git).

Examples::

    .venv/bin/python bench/esme_scenario.py --sci 10 --cpi 20 --smi 1000 --max-seconds 120
    .venv/bin/python bench/esme_scenario.py --shape cluster --smi 1000 --runs 3 \\
        --json bench/results/esme-cluster-smi1000.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import httpx
import redis
import websockets
from common import (
    PASSWORD,
    SUPERADMIN,
    Server,
    bearer,
    client_cpu_seconds,
    delete_redis_keys,
    expect,
    free_port,
    log,
    percentile,
    process_cpu_seconds,
    process_status,
    sign_in,
)

from aidpost.cluster import Cluster, postgres_databases
from aidpost.demo import DEMO_PASSWORD

POLLS = 10  # ESME's participant asks for its chats at most this often
CONSUMERS = 2  # the cluster's default; see --consumers


@dataclass
class Run:
    started: float = field(default_factory=time.monotonic)
    participants: int = 0
    chats: int = 0
    sent: Counter[int] = field(default_factory=Counter)  # second -> messages sent
    delivered: Counter[int] = field(default_factory=Counter)  # second -> reached staff
    latencies: list[float] = field(default_factory=list)
    # ESME's loop makes one participant at a time: these round trips bound its rate.
    sign_ups: list[float] = field(default_factory=list)  # ms per sign-up request
    asks: list[float] = field(default_factory=list)  # ms per help request
    staff_frames: Counter[str] = field(default_factory=Counter)  # other frames staff got
    stop_reason: str = ""
    done: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def second(self) -> int:
        return int(time.monotonic() - self.started)

    def stop(self, reason: str) -> None:
        if not self.done.is_set():
            self.stop_reason = reason
            self.done.set()

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://").replace("https://", "wss://") + "/messenger-api/connect"


async def connect(base: str, token: str) -> Any:
    ws = await websockets.connect(
        ws_url(base), open_timeout=45, max_size=2**22, ping_interval=None, compression=None
    )
    await ws.send(json.dumps({"Authorization": f"Bearer {token}"}))
    return ws


async def staff_member(base: str, token: str, sci: float, run: Run) -> None:
    """ESME's organizer: ``start_chat`` every ``sci`` ms; here it also reads and measures."""
    ws = await connect(base, token)

    async def press() -> None:
        frame = json.dumps({"type": "start_chat", "payload": ""})
        while not run.done.is_set():
            await asyncio.sleep(sci / 1000)
            await ws.send(frame)

    async def read() -> None:
        async for raw in ws:
            received = time.time_ns()
            if '"user_message"' not in raw:
                kind = raw[9:40].split('"')[0]
                run.staff_frames[kind] += 1
                continue
            frame = json.loads(raw)
            payload = frame.get("payload") or {}
            if frame.get("type") != "user_message" or payload.get("fromOrganizer"):
                continue
            content = str(payload.get("content", ""))
            stamp = content.rpartition(" t=")[2]
            if stamp.isdigit():
                run.delivered[run.second()] += 1
                run.latencies.append((received - int(stamp)) / 1e6)

    try:
        await asyncio.gather(press(), read())
    except Exception as exc:
        run.stop(f"staff socket: {type(exc).__name__}: {exc}")
    finally:
        with contextlib.suppress(Exception):
            await ws.close()


async def participant(base: str, token: str, number: int, smi: float, run: Run) -> None:
    """ESME's participant worker; ``base`` is where its WebSocket goes."""
    try:
        ws = await connect(base, token)
    except Exception as exc:
        run.stop(f"participant {number}: could not connect: {type(exc).__name__}: {exc}")
        return
    try:
        chat_id = None
        for _ in range(POLLS):
            await asyncio.sleep(smi / 1000)
            await ws.send(json.dumps({"type": "get_chats", "payload": ""}))
            frame = json.loads(await asyncio.wait_for(ws.recv(), 45))
            if frame.get("type") == "chats" and frame["payload"]["chats"]:
                chat_id = frame["payload"]["chats"][0]["id"]
                break
        if chat_id is None:
            run.stop(f"participant {number}: no chat after {POLLS} polls")
            return
        run.chats += 1

        async def read() -> None:
            async for _raw in ws:
                pass

        async def send() -> None:
            n = 0
            while not run.done.is_set():
                await asyncio.sleep(smi / 1000)
                n += 1
                message = f"connection {number}: message number {n} t={time.time_ns()}"
                payload = {"chatId": chat_id, "message": message}
                await ws.send(json.dumps({"type": "send_message", "payload": payload}))
                run.sent[run.second()] += 1

        reader = asyncio.create_task(read())
        await send()
        reader.cancel()
    except Exception as exc:
        if not run.done.is_set():
            run.stop(f"participant {number}: {type(exc).__name__}: {exc}")
    finally:
        with contextlib.suppress(Exception):
            await ws.close()


async def add_participants(
    http: httpx.AsyncClient, sockets: list[str], event_id: int, args: argparse.Namespace, run: Run
) -> None:
    """ESME's loop: wait ``cpi``, sign up, ask for help, start the worker; one at a time.
    The workers' WebSockets go to ``sockets`` in turn."""
    tag = uuid.uuid4().hex[:8]
    while not run.done.is_set():
        await asyncio.sleep(args.cpi / 1000)
        if run.participants >= args.max_participants:
            run.stop(f"reached --max-participants {args.max_participants} (no error)")
            return
        n = run.participants + 1
        try:
            body = {"email": f"participant_{tag}_{n}@performance.example", "password": PASSWORD,
                    "confirmPassword": PASSWORD, "phoneNumber": "+48100200300"}  # fmt: skip
            began = time.perf_counter()
            r = await http.post("/participant-api/auth/sign-up", json=body)
            token = expect(r, 201, "sign up")["token"]
            signed = time.perf_counter()
            ask = {"eventId": event_id, "description": "Performance test chat request"}
            r = await http.post("/participant-api/chat-requests", json=ask, headers=bearer(token))
            expect(r, 200, "chat request")
            run.sign_ups.append((signed - began) * 1000)
            run.asks.append((time.perf_counter() - signed) * 1000)
        except Exception as exc:
            run.stop(f"participant {n}: {exc}")
            return
        run.spawn(participant(sockets[n % len(sockets)], token, n, args.smi, run))
        run.participants += 1


async def progress(run: Run, max_seconds: float) -> None:
    last = -1
    while not run.done.is_set():
        await asyncio.sleep(0.25)
        now = run.second()
        if now != last and now > 0:
            last = now
            log(
                f"t={now:4d}s participants={run.participants} chats={run.chats} "
                f"sent/s={run.sent[now - 1]} delivered/s={run.delivered[now - 1]}"
            )
        if time.monotonic() - run.started >= max_seconds:
            run.stop(f"reached --max-seconds {max_seconds:.0f} (no error)")


def rate(counter: Counter[int], end: int, seconds: int = 5) -> float:
    window = [counter[s] for s in range(max(0, end - seconds), end)]
    return sum(window) / len(window) if window else math.nan


# -- what a run is measured against ------------------------------------------------------------


@dataclass
class Cpu:
    """CPU seconds used so far, as counters that only grow: ``totals["server"]`` is every
    aidpost process together, the other totals are named parts of the machine, and
    ``processes`` is each aidpost process by name (the cluster's)."""

    totals: dict[str, float]
    processes: dict[str, float] = field(default_factory=dict)


def shares(now: dict[str, float], then: dict[str, float], seconds: float) -> dict[str, float]:
    """Each counter's CPU share of one core between two readings."""
    return {k: round((v - then.get(k, 0.0)) / seconds, 2) for k, v in now.items()}


class Target(Protocol):
    """The server a run is measured against, started for that run alone."""

    def start(self) -> str:
        """Start it and seed the demo data; its base URL once the demo data is served."""
        ...

    def cpu_seconds(self) -> Cpu: ...

    def socket_bases(self, direct: bool) -> list[str]:
        """Where the WebSockets go: the base URL, or (``direct``) each gateway's own."""
        ...

    def finish(self, result: dict[str, Any]) -> None:
        """Add what is read from the servers after the run (memory, crashes)."""
        ...

    def report_problems(self) -> None:
        """The servers' warnings and errors, on stderr."""
        ...

    def stop(self) -> None:
        """Stop every process and remove every trace of the run, whatever state it is in."""
        ...


# The one-process run's lifted limits, which the cluster gets too (the HTTP rate limit is
# lifted by common.Server, and below for the cluster).
LIFTED = {
    "AIDPOST_MESSENGER_ACTIONS_PER_SECOND": "100000",
    "AIDPOST_MESSENGER_ACTIONS_BURST": "100000",
    "AIDPOST_LOG_LEVEL": "WARNING",
    "AIDPOST_MAILER_TRANSPORT_URL": "memory:",
}
# --cheap-hash: argon2id at 1 MiB and one pass instead of OWASP's 19 MiB and two, so that the
# run measures the chat system rather than the password hashing of each sign-up.
CHEAP_HASH = {"AIDPOST_AUTH_ARGON2_MEMORY_KIB": "1024", "AIDPOST_AUTH_ARGON2_TIME_COST": "1"}


def asyncio_debug() -> dict[str, str]:
    return {"PYTHONASYNCIODEBUG": "1"} if os.environ.get("BENCH_ASYNCIO_DEBUG") else {}


def log_problems(name: str, path: Path, raw: bool = False) -> None:
    """The count and the last of a server log's warnings and errors (with ``raw``, also any
    line that is not a JSON record: a traceback printed on the way down)."""
    problems = [
        line
        for line in path.read_text(errors="replace").splitlines()
        if '"level": "error"' in line
        or '"level": "warning"' in line
        or (raw and line.strip() and not line.startswith("{"))
    ]
    log(f"{name} log: {len(problems)} warnings and errors; the last ones:")
    for line in problems[-8:]:
        log(line[:600] + " ... " + line[-1500:])


class OneProcess:
    """``aidpost serve --demo``: every component in one process, SQLite, the in-memory bus."""

    def __init__(self) -> None:
        self.workdir: Path | None = None
        self.server: Server | None = None

    def start(self) -> str:
        self.workdir = Path(tempfile.mkdtemp(prefix="aidpost-esme-"))
        server = self.server = Server(free_port(), self.workdir, {**LIFTED, **asyncio_debug()})
        server.start()

        async def ready() -> None:
            async with httpx.AsyncClient(base_url=server.base_url) as http:
                await server.wait_ready(http)

        asyncio.run(ready())
        time.sleep(2)  # demo data seeded after start
        return server.base_url

    def cpu_seconds(self) -> Cpu:
        assert self.server is not None
        return Cpu({"server": self.server.cpu_seconds()})

    def socket_bases(self, direct: bool) -> list[str]:
        assert self.server is not None
        return [self.server.base_url]

    def finish(self, result: dict[str, Any]) -> None:
        assert self.server is not None
        peak = int(self.server.proc_status().get("VmHWM", "0 kB").split()[0])
        result["server_rss_mib"] = round(peak / 1024, 1)

    def report_problems(self) -> None:
        assert self.server is not None
        log_problems("server", self.server.log_path)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


PYCACHE = Path(tempfile.gettempdir()) / "aidpost-esme-pycache"
COMPONENT_DATABASES = ("auth", "organizer", "participant", "messenger", "mailer", "status")


class LocalCluster:
    """The production shape on this machine, with ``aidpost.cluster.Cluster``: auth,
    organizer, participant, ``consumers`` messenger consumers, ``gateways`` messenger
    gateways, the mailer, web and status, each its own ``aidpost serve --component``
    process, behind HAProxy; on PostgreSQL databases created for the run and Redis under a
    bus prefix of the run's own. ``stop`` stops every process, drops the databases and
    deletes the run's Redis keys."""

    def __init__(
        self, gateways: int, consumers: int, postgres: str, redis_url: str, keep_logs: bool
    ) -> None:
        run = uuid.uuid4().hex[:8]
        self.tag = f"aidpost_esme_{run}"
        self.bus_prefix = f"aidpost-esme-{run}:"
        self.gateways, self.consumers = gateways, consumers
        self.postgres, self.redis_url, self.keep_logs = postgres, redis_url, keep_logs
        self.workdir: Path | None = None
        self.cluster: Cluster | None = None
        # Last readings, so that a process gone between two readings keeps what it used.
        self.process_cpu: dict[str, float] = {}
        self.postgres_cpu: dict[int, float] = {}

    def env(self) -> dict[str, str]:
        return {
            **LIFTED,
            **asyncio_debug(),
            "AIDPOST_RATE_LIMIT": "1000000/minute",
            "AIDPOST_BUS_PREFIX": self.bus_prefix,
            "AIDPOST_AUTH_SUPERADMIN_EMAIL": SUPERADMIN[0],
            "AIDPOST_AUTH_SUPERADMIN_PASSWORD": SUPERADMIN[1],
            # Eleven processes compiling every module they import take minutes to start
            # where this machine's environment turns bytecode caching off: cache it, away
            # from the source tree. (Start-up only; what runs after is the same code.)
            "PYTHONDONTWRITEBYTECODE": "",
            "PYTHONPYCACHEPREFIX": str(PYCACHE),
        }

    def start(self) -> str:
        t0 = time.monotonic()
        self.workdir = Path(tempfile.mkdtemp(prefix="aidpost-esme-cluster-"))
        log(f"cluster: databases {self.tag}_*, bus prefix {self.bus_prefix}, in {self.workdir}")
        databases = postgres_databases(self.postgres, self.tag)
        env = self.env()
        urls = {f"AIDPOST_{c.upper()}_DATABASE_URL": url for c, url in databases.items()}
        seed = subprocess.run(
            [sys.executable, "-m", "aidpost.cli", "demo"],
            env={**os.environ, **env, **urls, "AIDPOST_BUS_URL": self.redis_url,
                 "AIDPOST_DATA_DIR": str(self.workdir / "seed")},
            capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
        if seed.returncode != 0:
            raise RuntimeError(f"aidpost demo failed: {seed.stderr[-3000:]}")
        self.cluster = Cluster(
            databases,
            self.redis_url,
            gateways=self.gateways,
            consumers=self.consumers,
            workdir=self.workdir / "cluster",
            extra_env=env,
        )
        self.cluster.start()
        asyncio.run(wait_for_demo(self.cluster.url))
        log(
            f"cluster up in {time.monotonic() - t0:.0f} s: {self.gateways} gateways, "
            f"{self.consumers} consumers at {self.cluster.url}"
        )
        return self.cluster.url

    def aidpost_processes(self) -> list[tuple[str, subprocess.Popen[bytes]]]:
        assert self.cluster is not None
        return [(p.name, p.popen) for p in self.cluster.processes if p.popen is not None]

    def socket_bases(self, direct: bool) -> list[str]:
        assert self.cluster is not None
        if not direct:
            return [self.cluster.url]
        return [p.url for p in self.cluster.processes if p.name.startswith("gateway")]

    def cpu_seconds(self) -> Cpu:
        assert self.cluster is not None
        for name, popen in self.aidpost_processes():
            if not math.isnan(seconds := process_cpu_seconds(popen.pid)):
                self.process_cpu[name] = seconds
        for pid in postgres_pids():
            if not math.isnan(seconds := process_cpu_seconds(pid)):
                self.postgres_cpu[pid] = seconds
        proxies = [self.cluster.haproxy, *self.cluster.retired]
        totals = {
            "server": sum(self.process_cpu.values()),
            "redis": redis_cpu_seconds(self.redis_url),
            "haproxy": sum(process_cpu_seconds(p.pid) for p in proxies if p is not None),
            "postgres": sum(self.postgres_cpu.values()),
            "machine": machine_busy_seconds(),
        }
        return Cpu(totals, dict(self.process_cpu))

    def finish(self, result: dict[str, Any]) -> None:
        peaks = [
            int(process_status(popen.pid).get("VmHWM", "0 kB").split()[0])
            for _name, popen in self.aidpost_processes()
        ]
        result["server_rss_mib"] = round(sum(peaks) / 1024, 1)  # the sum of each one's peak
        assert self.cluster is not None
        watched = [*self.aidpost_processes(), ("haproxy", self.cluster.haproxy)]
        exited = {name: popen.returncode for name, popen in watched
                  if popen is not None and popen.poll() is not None}  # fmt: skip
        result["shape"] = "cluster"
        result["gateways"], result["consumers"] = self.gateways, self.consumers
        result["exited_during_run"] = exited

    def report_problems(self) -> None:
        assert self.cluster is not None
        for name, popen in [*self.aidpost_processes(), ("haproxy", self.cluster.haproxy)]:
            if popen is not None and popen.returncode is not None:
                log(f"{name} EXITED during the run with status {popen.returncode}")
        logs = sorted(self.cluster.workdir.glob("*.log"))
        for path in logs:
            if path.stat().st_size:
                log_problems(path.stem, path, raw=True)
        quiet = [path.stem for path in logs if not path.stat().st_size]
        log(f"logs with nothing in them: {', '.join(quiet) or 'none'}")

    def stop(self) -> None:
        if self.cluster is not None:
            # The edge first: no new connection reaches a process that is stopping, and
            # HAProxy does not report each one going down.
            for proxy in [self.cluster.haproxy, *self.cluster.retired]:
                if proxy is not None and proxy.poll() is None:
                    proxy.terminate()
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proxy.wait(timeout=10)
            try:
                self.cluster.stop()
            except Exception as exc:
                log(f"cluster stop: {type(exc).__name__}: {exc}; killing what is left")
            proxies = [self.cluster.haproxy, *self.cluster.retired]
            for popen in [*(p for _n, p in self.aidpost_processes()), *proxies]:
                if popen is not None and popen.poll() is None:
                    popen.kill()
                    popen.wait(timeout=30)
        try:
            left = asyncio.run(drop_databases(self.postgres, self.tag))
            log(f"dropped databases {self.tag}_*" + (f"; STILL THERE: {left}" if left else ""))
        except Exception as exc:
            log(f"could not drop databases {self.tag}_*: {type(exc).__name__}: {exc}")
        try:
            log(f"deleted {delete_redis_keys(self.redis_url, self.bus_prefix)} Redis keys")
        except Exception as exc:
            log(f"could not delete Redis keys {self.bus_prefix}*: {type(exc).__name__}: {exc}")
        if self.workdir is not None:
            if self.keep_logs:
                log(f"logs kept in {self.workdir}")
            else:
                shutil.rmtree(self.workdir, ignore_errors=True)


async def wait_for_demo(base: str, seconds: float = 60) -> None:
    """Until the demo event reaches the participant component (over the bus, from the
    organizer's outbox)."""
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        token = await sign_in(
            http, "participant-api", "participant@demo.aidpost.example", DEMO_PASSWORD
        )
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            r = await http.get("/participant-api/events", headers=bearer(token))
            if expect(r, 200, "events"):
                return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"the demo event did not reach the participant API in {seconds:.0f} s")


async def drop_databases(server_url: str, tag: str) -> list[str]:
    """Drop the run's databases (connections or not); the names of any still there."""
    conn = await asyncpg.connect(server_url + "/postgres")
    try:
        for component in COMPONENT_DATABASES:
            await conn.execute(f'DROP DATABASE IF EXISTS "{tag}_{component}" WITH (FORCE)')
        rows = await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE $1", tag + "%")
        return [row["datname"] for row in rows]
    finally:
        await conn.close()


def redis_cpu_seconds(url: str) -> float:
    """Redis's own account of its CPU (the server's, whoever its clients are)."""
    client = redis.Redis.from_url(url)
    try:
        info = client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    except redis.RedisError:
        return math.nan
    finally:
        client.close()


def postgres_pids() -> list[int]:
    """Every PostgreSQL process on this machine (the server's and every backend)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
    return pids


def machine_busy_seconds() -> float:
    """CPU time every process on this machine used (all cores), from ``/proc/stat``."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the cleanup is done (a second Ctrl-C would leave
    processes and databases behind)."""
    stops = (signal.SIGINT, signal.SIGTERM)
    old = {s: signal.signal(s, signal.SIG_IGN) for s in stops}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up as Ctrl-C does


# -- one run, several runs ---------------------------------------------------------------------


async def scenario(base: str, args: argparse.Namespace, target: Target | None) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, timeout=45) as http:
        staff_token = await sign_in(
            http, "organizer-api", "support@demo.aidpost.example", DEMO_PASSWORD
        )
        probe = await sign_in(
            http, "participant-api", "participant@demo.aidpost.example", DEMO_PASSWORD
        )
        events = expect(
            await http.get("/participant-api/events", headers=bearer(probe)), 200, "events"
        )
        if not events:
            raise RuntimeError("no event to ask help at: seed the demo data")
        event_id = int(events[0]["id"])
        run = Run()
        cpu0 = target.cpu_seconds() if target else None
        client_cpu0 = client_cpu_seconds()
        sockets = target.socket_bases(args.direct_sockets) if target else [base]
        run.spawn(staff_member(sockets[0], staff_token, args.sci, run))
        run.spawn(add_participants(http, sockets, event_id, args, run))
        run.spawn(progress(run, args.max_seconds))
        await run.done.wait()
        end = run.second()
        elapsed = time.monotonic() - run.started
        cpu = target.cpu_seconds() if target else None
        client_cpu = (client_cpu_seconds() - client_cpu0) / elapsed
        for task in list(run.tasks):
            task.cancel()
        await asyncio.gather(*run.tasks, return_exceptions=True)
    ordered = sorted(run.latencies)
    server = shares(cpu.totals, cpu0.totals, elapsed) if cpu and cpu0 else {}
    result = {
        "sci_ms": args.sci,
        "cpi_ms": args.cpi,
        "smi_ms": args.smi,
        "stopped": run.stop_reason,
        "seconds": round(elapsed, 1),
        "participants": run.participants,
        "active_chats": run.chats,
        "sent_per_s_last5": round(rate(run.sent, end), 1),
        "delivered_per_s_last5": round(rate(run.delivered, end), 1),
        "sent_total": sum(run.sent.values()),
        "delivered_total": sum(run.delivered.values()),
        "latency_ms_p50": round(percentile(ordered, 0.50), 1),
        "latency_ms_p99": round(percentile(ordered, 0.99), 1),
        "latency_ms_max": round(ordered[-1], 1) if ordered else math.nan,
        "participants_per_s": round(run.participants / elapsed, 1),
        "sign_up_ms_p50": round(percentile(sorted(run.sign_ups), 0.50), 1),
        "sign_up_ms_p99": round(percentile(sorted(run.sign_ups), 0.99), 1),
        "help_request_ms_p50": round(percentile(sorted(run.asks), 0.50), 1),
        "help_request_ms_p99": round(percentile(sorted(run.asks), 0.99), 1),
        "staff_other_frames": dict(run.staff_frames),
        "server_cpu_share": server.pop("server", math.nan),
        "client_cpu_share": round(client_cpu, 2),
    }
    # The cluster's: Redis, HAProxy, PostgreSQL, the whole machine, and each aidpost process.
    result |= {f"{name}_cpu_share": share for name, share in server.items()}
    if cpu and cpu0 and cpu.processes:
        by_process = shares(cpu.processes, cpu0.processes, elapsed)
        result["server_cpu_share_by_process"] = by_process
    return result


def run_once(args: argparse.Namespace) -> dict[str, Any]:
    """One run on a server of its own (unless ``--base``); its result, also printed."""
    target: Target | None = None
    try:
        if args.base:
            base = args.base.rstrip("/")
        else:
            if args.shape == "one":
                target = OneProcess()
            else:
                target = LocalCluster(
                    args.gateways, args.consumers, args.postgres, args.redis, args.keep_logs
                )
            base = target.start()
        result = asyncio.run(scenario(base, args, target))
        result["cheap_hash"] = bool(args.cheap_hash)
        result["direct_sockets"] = bool(args.direct_sockets)
        if target is not None:
            target.finish(result)
        print(json.dumps(result, indent=2), flush=True)
        if target is not None:
            target.report_problems()
        return result
    finally:
        if target is not None:
            with uninterrupted():
                target.stop()


# What the summary of several runs gives the median and range of.
SUMMARY = (
    "active_chats",
    "participants",
    "sent_per_s_last5",
    "delivered_per_s_last5",
    "latency_ms_p50",
    "latency_ms_p99",
    "participants_per_s",
    "sign_up_ms_p50",
    "help_request_ms_p50",
    "server_cpu_share",
    "client_cpu_share",
    "redis_cpu_share",
    "haproxy_cpu_share",
    "postgres_cpu_share",
    "machine_cpu_share",
    "server_rss_mib",
)


def summarize(results: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Median, min and max of each figure in ``SUMMARY`` over the runs that have it."""
    summary = {}
    for key in SUMMARY:
        values = [r[key] for r in results if isinstance(r.get(key), int | float)]
        values = [v for v in values if not math.isnan(v)]
        if values:
            median = round(statistics.median(values), 2)
            summary[key] = {"median": median, "min": min(values), "max": max(values),
                            "runs": len(values)}  # fmt: skip
    return summary


def print_summary(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    shape = "--base" if args.base else args.shape
    if shape == "cluster":
        shape += f" ({args.gateways} gateways, {args.consumers} consumers)"
    print(
        f"\nsummary of {len(results)} runs, {shape}, sci={args.sci:g} cpi={args.cpi:g} "
        f"smi={args.smi:g} ms: median (min to max)"
    )
    for key, figures in summarize(results).items():
        median, low, high = (f"{figures[k]:g}" for k in ("median", "min", "max"))
        some = (
            f", {figures['runs']:g} runs of {len(results)}"
            if figures["runs"] < len(results)
            else ""
        )
        print(f"  {key:<24} {median:>9} ({low} to {high}{some})")
    for reason, count in Counter(r["stopped"] for r in results).most_common():
        print(f"  stopped {count} times: {reason}")
    sys.stdout.flush()


def strict(value: Any) -> Any:
    """``value`` with NaN as null: strict JSON, for other tools than Python's."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strict(v) for v in value]
    return value


def source_version() -> dict[str, Any]:
    """The commit the runs measured, and whether the work tree differed from it."""
    repo = Path(__file__).resolve().parent.parent

    def git(*command: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(repo), *command], capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}


def write_json(path: Path, args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    document = {
        "benchmark": "esme_scenario",
        "shape": "base" if args.base else args.shape,
        "gateways": args.gateways if args.shape == "cluster" else None,
        "consumers": args.consumers if args.shape == "cluster" else None,
        "sci_ms": args.sci,
        "cpi_ms": args.cpi,
        "smi_ms": args.smi,
        "max_seconds": args.max_seconds,
        "max_participants": args.max_participants,
        "runs_asked": args.runs,
        **source_version(),
        "runs": results,
        "summary": summarize(results),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(strict(document), indent=2, allow_nan=False) + "\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sci", type=float, default=10, help="start chat interval, ms")
    parser.add_argument("--cpi", type=float, default=20, help="create participant interval, ms")
    parser.add_argument("--smi", type=float, default=1000, help="send message interval, ms")
    parser.add_argument("--max-participants", type=int, default=100_000)
    parser.add_argument("--max-seconds", type=float, default=120)
    parser.add_argument("--base", help="an aidpost that is up (with demo data); default: own")
    parser.add_argument(
        "--shape",
        choices=("one", "cluster"),
        default="one",
        help="own server: one process (aidpost serve --demo) or the local cluster",
    )
    parser.add_argument("--gateways", type=int, default=2, help="cluster: messenger gateways")
    parser.add_argument(
        "--consumers", type=int, default=CONSUMERS, help="cluster: messenger consumers"
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("AIDPOST_CLUSTER_POSTGRES", "postgresql://postgres@127.0.0.1:5432"),
        help="cluster: the PostgreSQL server to create the run's databases on",
    )
    parser.add_argument(
        "--redis", default="redis://127.0.0.1:6379/5", help="cluster: the bus (Redis URL)"
    )
    parser.add_argument("--keep-logs", action="store_true", help="cluster: keep the run directory")
    parser.add_argument(
        "--direct-sockets",
        action="store_true",
        help="cluster: WebSockets straight to the gateways in turn, not through HAProxy "
        "(which holds at most half the descriptor limit in connections)",
    )
    parser.add_argument("--runs", type=int, default=1, help="runs in a row, each on a fresh server")
    parser.add_argument(
        "--cheap-hash",
        action="store_true",
        help="own server: argon2id at 1 MiB, one pass (measures chats, not password hashing)",
    )
    parser.add_argument("--json", type=Path, help="write every run and the medians here")
    args = parser.parse_args(argv)
    if args.base and args.shape == "cluster":
        parser.error("--base runs against a server that is up; --shape cluster starts one")
    if args.runs < 1 or args.gateways < 1 or args.consumers < 1:
        parser.error("--runs, --gateways and --consumers are at least 1")
    if args.direct_sockets and args.shape != "cluster":
        parser.error("--direct-sockets is for --shape cluster")
    if args.cheap_hash and args.base:
        parser.error("--cheap-hash sets up the server it starts; not with --base")
    if args.cheap_hash:
        LIFTED.update(CHEAP_HASH)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, interrupt)
    results: list[dict[str, Any]] = []
    for number in range(1, args.runs + 1):
        if args.runs > 1:
            log(f"run {number} of {args.runs}")
        results.append(run_once(args))
        if args.json:
            write_json(args.json, args, results)
    if args.runs > 1:
        print_summary(args, results)
    if args.json:
        log(f"results in {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
