"""aidpost's side of ``bench/relay.py``: the messenger in its production shape, on PostgreSQL
and Redis, as processes on this machine. Runs with the project's own venv (it imports
aidpost); ``bench/relay.py`` starts it and reads what it prints.

What it starts, with ``aidpost.cluster.Cluster``'s ``add`` (the processes the scale-out
tests start): auth, organizer and participant (sign-ins, staff, help requests), ``--consumers``
messenger consumers and ``--gateways`` messenger gateways, each its own ``aidpost serve
--component`` process. Not started, because no chat message passes through them: the mailer,
the web component, the status page and HAProxy (the load generator connects each side of a
pair straight to its own gateway).

Storage is on: every message is committed to PostgreSQL by a consumer before the gateways
publish it. Fresh state for every run: the databases ``aidpost_relaybench_*`` are dropped and
created again, and the keys under the bus prefix ``aidpost-relaybench:`` on Redis database
``--redis-db`` (default 4; never 0) are deleted, before the start and again after the stop.
The demo data (``aidpost demo``) is seeded first. Benchmark-only settings: argon2id at 1 MiB
and one pass (sign-ups are setup here, not what is measured), the HTTP rate limit and the
messenger's per-socket action limit lifted, logs at WARNING.

Once every process answers ``/status`` it prints one JSON line on stdout, ``{"processes":
[{name, component, url, pid}, ...], "workdir": ...}``, and waits for SIGTERM or SIGINT;
then it stops the processes and cleans up.

    .venv/bin/python bench/relay_cluster.py --gateways 2 --consumers 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import asyncpg

from aidpost.cluster import Cluster, postgres_databases

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import delete_redis_keys

TAG = "aidpost_relaybench"
BUS_PREFIX = "aidpost-relaybench:"
COMPONENTS = ("auth", "organizer", "participant", "messenger", "mailer", "status")


def log(message: str) -> None:
    print(f"[relay-cluster] {message}", file=sys.stderr, flush=True)


class MessengerCluster(Cluster):
    """The processes a chat needs, and no edge: clients connect to the gateways directly."""

    def start(self) -> MessengerCluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for name in ("auth", "organizer", "participant"):
            self.add(name, name)
        for i in range(self.consumers):
            self.add(f"consumer{i + 1}", "messenger", AIDPOST_MESSENGER_ROLES="consumer")
        for i in range(self.gateways):
            self.add(f"gateway{i + 1}", "messenger", AIDPOST_MESSENGER_ROLES="gateway")
        return self


def bench_env() -> dict[str, str]:
    return {
        "AIDPOST_BUS_PREFIX": BUS_PREFIX,
        "AIDPOST_RATE_LIMIT": "100000000/minute",
        "AIDPOST_RATE_LIMIT_STORAGE": "memory://",  # lifted anyway; nothing outside the prefix
        "AIDPOST_AUTH_ARGON2_MEMORY_KIB": "1024",
        "AIDPOST_AUTH_ARGON2_TIME_COST": "1",
        "AIDPOST_MESSENGER_ACTIONS_PER_SECOND": "1000000",
        "AIDPOST_MESSENGER_ACTIONS_BURST": "1000000",
        "AIDPOST_MAILER_TRANSPORT_URL": "memory:",
        "AIDPOST_LOG_LEVEL": "WARNING",
    }


async def _drop_databases(server_url: str) -> None:
    conn = await asyncpg.connect(server_url + "/postgres")
    try:
        for component in COMPONENTS:
            await conn.execute(f'DROP DATABASE IF EXISTS "{TAG}_{component}" WITH (FORCE)')
    finally:
        await conn.close()


def drop_databases(server_url: str) -> None:
    asyncio.run(_drop_databases(server_url))


def drop_bus_keys(bus_url: str) -> int:
    """Delete this benchmark's keys (and only those) from its Redis database."""
    return delete_redis_keys(bus_url, BUS_PREFIX)


def seed_demo(env: dict[str, str], data_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aidpost.cli", "demo"],
        env={**os.environ, **env, "AIDPOST_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"aidpost demo failed: {done.stderr[-3000:]}")


def describe(cluster: Cluster) -> str:
    processes = [
        {"name": p.name, "component": p.component, "url": p.url, "pid": p.popen.pid}
        for p in cluster.processes
        if p.popen is not None
    ]
    return json.dumps({"processes": processes, "workdir": str(cluster.workdir)})


def report_problems(workdir: Path, lines: int = 6) -> None:
    """The last warnings and errors of each process's log, on stderr (the logs go with the
    work directory)."""
    for path in sorted(workdir.glob("*.log")):
        text = path.read_text(errors="replace").splitlines()
        problems = [line for line in text if '"level": "error"' in line or "Traceback" in line]
        problems += [line for line in text if '"level": "warning"' in line]
        if problems:
            log(f"{path.stem}: {len(problems)} warnings and errors; the last ones:")
            for line in problems[-lines:]:
                log("  " + line[:400])


def wait_for_stop() -> None:
    stops = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stops)
    signal.sigwait(stops)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateways", type=int, default=2)
    parser.add_argument("--consumers", type=int, default=2)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379")
    parser.add_argument("--redis-db", type=int, default=4)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.redis_db == 0:
        raise SystemExit("relay_cluster: Redis database 0 is not ours to clean; pick another")
    bus_url = f"{args.redis}/{args.redis_db}"
    workdir = Path(tempfile.mkdtemp(prefix="aidpost-relaybench-"))
    drop_databases(args.postgres)
    drop_bus_keys(bus_url)
    databases = postgres_databases(args.postgres, TAG)
    env = bench_env()
    urls = {f"AIDPOST_{c.upper()}_DATABASE_URL": url for c, url in databases.items()}
    log("seeding the demo data")
    seed_demo({**env, **urls, "AIDPOST_BUS_URL": bus_url}, workdir / "seed")
    cluster = MessengerCluster(
        databases, bus_url, args.gateways, args.consumers, workdir=workdir / "c", extra_env=env
    )
    try:
        log(f"starting {args.gateways} gateways and {args.consumers} consumers")
        cluster.start()
        print(describe(cluster), flush=True)
        wait_for_stop()
    finally:
        log("stopping")
        cluster.stop()
        report_problems(cluster.workdir)
        drop_databases(args.postgres)
        log(f"deleted {drop_bus_keys(bus_url)} Redis keys under {BUS_PREFIX}")
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
