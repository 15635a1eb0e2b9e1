"""Idle connections one gateway process holds, and the memory each costs it.

Opens ``--connections`` WebSockets to ``/messenger-api/connect`` in steps of ``--step``,
each one authorized (ESME's Authorization frame) and answered once (``get_chats``), then
left idle; after each step it reads the server's resident memory (``VmRSS``) and prints
the step's cost per connection. Then it holds them all for ``--hold`` seconds and counts
how many are still open. By default it starts its own ``aidpost serve --demo`` (one process,
SQLite, every component; the idle timeout lifted past the hold); all sockets belong to the
demo participant, as one person's phone, tablet and laptop would.

The file-descriptor limit is raised to the hard limit for this process and the server.

    .venv/bin/python bench/connections.py --connections 20000 --step 2000 --hold 60

One process cannot pass ~19,900 sockets where the open-file limit is 20,000 per process;
to show more on one machine, run one copy per gateway process, side by side (each starts
its own server), with holds that overlap:

    for i in 1 2; do .venv/bin/python bench/connections.py --connections 11000 \
        --step 2750 --hold 180 > /tmp/conn-$i.log & done; wait
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Server, free_port, log, sign_in

PARTICIPANT = ("participant@demo.aidpost.example", "demo-password-1234")


def raise_fd_limit() -> int:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def now_utc() -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime())


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def open_one(url: str, token: str) -> Any:
    ws = await websockets.connect(url, open_timeout=60, ping_interval=None, max_size=2**20)
    await ws.send(json.dumps({"Authorization": f"Bearer {token}"}))
    await ws.send(json.dumps({"type": "get_chats", "payload": ""}))
    while True:  # the answer shows the socket is authorized and served
        frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
        if frame.get("type") == "chats":
            return ws


async def guarded(gate: asyncio.Semaphore, url: str, token: str) -> Any:
    async with gate:
        return await open_one(url, token)


async def run(args: argparse.Namespace) -> None:
    limit = raise_fd_limit()
    if limit < args.connections + 1000:
        log(f"file-descriptor hard limit is {limit}: fewer connections will open")
    server: Server | None = None
    work = Path(tempfile.mkdtemp(prefix="aidpost-conn-"))
    base = args.base
    if base is None:
        server = Server(
            free_port(),
            work,
            env={
                "AIDPOST_MESSENGER_IDLE_TIMEOUT_SECONDS": str(args.hold + 3600),
                "AIDPOST_LOG_LEVEL": "WARNING",
            },
        )
        server.start()
        base = server.base_url
    sockets: list[Any] = []
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            if server is not None:
                await server.wait_ready(client)
            token = await sign_in(client, "participant-api", *PARTICIPANT)
        url = base.replace("http://", "ws://") + "/messenger-api/connect"
        for ws in [await open_one(url, token) for _ in range(20)]:  # warm up, then close
            await ws.close()
        await asyncio.sleep(1)
        pid = server.pid if server is not None else args.pid
        before = rss_kib(pid) if pid else 0
        print(f"server RSS before: {before / 1024:.1f} MiB")
        slopes = []
        failures = 0
        started = time.monotonic()
        gate = asyncio.Semaphore(args.concurrency)
        while len(sockets) < args.connections:
            want = min(args.step, args.connections - len(sockets))
            step_rss = rss_kib(pid) if pid else 0
            results = await asyncio.gather(
                *(guarded(gate, url, token) for _ in range(want)), return_exceptions=True
            )
            opened = [r for r in results if not isinstance(r, BaseException)]
            failures += len(results) - len(opened)
            sockets += opened
            await asyncio.sleep(0.5)
            now = rss_kib(pid) if pid else 0
            if opened and pid:
                slopes.append((now - step_rss) / len(opened))
            errors = {type(r).__name__ for r in results if isinstance(r, BaseException)}
            print(
                f"{len(sockets):>6} open, {failures} failed{' ' + str(errors) if errors else ''}"
                f"; server RSS {now / 1024:.1f} MiB"
                f" (+{slopes[-1] if slopes else 0:.1f} KiB each this step)",
                flush=True,
            )
            if len(opened) < want / 2:  # a limit reached (file descriptors, most often)
                break
        opened_in = time.monotonic() - started
        # Wall-clock times, so runs in parallel (one per gateway process) can be shown to
        # have held their sockets at the same time.
        log(f"holding {len(sockets)} idle connections for {args.hold:.0f} s from {now_utc()}")
        await asyncio.sleep(args.hold)
        alive = sum(1 for ws in sockets if ws.close_code is None)
        after = rss_kib(pid) if pid else 0
        print()
        print(f"connections opened: {len(sockets)} in {opened_in:.1f} s ({failures} failed)")
        print(f"still open after {args.hold:.0f} s idle: {alive} (at {now_utc()})")
        if pid and sockets:
            print(f"server RSS: {before / 1024:.1f} → {after / 1024:.1f} MiB")
            print(f"per idle connection: {(after - before) / len(sockets):.1f} KiB overall, "
                  f"median step {statistics.median(slopes):.1f} KiB")  # fmt: skip
        mine = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"load generator peak RSS: {mine / 1024:.0f} MiB")
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        if server is not None:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=20_000)
    parser.add_argument("--step", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=200, help="connects in flight")
    parser.add_argument("--hold", type=float, default=60.0, help="seconds to hold them idle")
    parser.add_argument("--base", help="an aidpost already running (with demo data)")
    parser.add_argument("--pid", type=int, help="with --base: the gateway process to measure")
    args = parser.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
