"""What one messenger consumer batch costs: ``MessengerService.handle_commands`` timed alone.

Creates the PostgreSQL database ``aidpost_bench_consumer`` (dropped first, and again at the
end), migrates it, opens 100 chats and then hands the service batches of ``send_message``
commands (100 characters, each with its own client id, spread over the chats), as the
sharded consumer would after a read. No gateway, no Redis (the hub is in memory and drops
what it is given): only the batch's transaction and its Python around it. Prints, per batch
size, the median wall time and CPU time of a batch (this process), the CPU per message, and
the CPU PostgreSQL's server processes for this database spent per message (read from
``/proc``, so only for a server on this machine; the mean over the batches, as the kernel
counts CPU in ticks of 10 ms).

    .venv/bin/python bench/consumer_batch.py --sizes 1,10,50,100
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import time

import asyncpg

from aidpost.core.bus import Event
from aidpost.core.clock import SystemClock
from aidpost.core.db import Database
from aidpost.core.directory import LocalDirectory
from aidpost.core.hub import MemoryHub
from aidpost.core.migrate import upgrade
from aidpost.messenger.models import Chat
from aidpost.messenger.service import MessengerService

DATABASE = "aidpost_bench_consumer"
CHATS = 100


async def no_users(ids: list[int]) -> dict[str, object]:
    return {}


def send(chat: int, key: int) -> Event:
    return Event(
        "messenger.command.v1",
        {
            "action": "send_message",
            "realm": "participant",
            "userId": chat + 1,
            "agencyId": None,
            "gateway": "bench",
            "conn": "bench",
            "payload": {"chatId": f"chat{chat:03}", "message": "x" * 100, "clientId": f"k{key}"},
        },
    )


def backend_seconds(pids: list[int]) -> float:
    """CPU seconds (user and system) the given server processes have used so far."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone, or not on this machine
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


async def run(args: argparse.Namespace) -> None:
    admin = await asyncpg.connect(f"{args.server}/postgres")
    await admin.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
    await admin.execute(f"CREATE DATABASE {DATABASE}")
    db = Database(f"{args.server.replace('postgresql://', 'postgresql+asyncpg://')}/{DATABASE}")
    try:
        await upgrade(db, "messenger")
        service = MessengerService(
            db, SystemClock(), MemoryHub(), LocalDirectory(no_users), max_message_chars=5000
        )
        async with db.transaction() as session:
            for i in range(CHATS):
                session.add(
                    Chat(
                        id=f"chat{i:03}",
                        agencyId=1,
                        eventId=1,
                        organizerId=1,
                        participantId=i + 1,
                        requestId=i + 1,
                        ended=0,
                        timeStart=dt.datetime.now(dt.UTC),
                        lastSeq=0,
                        startCommand=f"start{i}",
                    )
                )
        key = 0
        for _ in range(20):  # warm up: statement caches, prepared statements, the pool
            key += 1
            await service.handle_commands([send(0, key)])
        pids = [
            r["pid"]
            for r in await admin.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1", DATABASE
            )
        ]
        heads = ("batch", 6), ("wall ms", 9), ("cpu ms", 8), ("cpu µs/message", 15)
        print(" ".join(f"{h:>{w}}" for h, w in (*heads, ("pg µs/message", 14))))
        for size in args.sizes:
            walls, cpus = [], []
            pg_before = backend_seconds(pids)
            for _ in range(args.batches):
                batch = []
                for j in range(size):
                    key += 1
                    batch.append(send(j % CHATS, key))
                wall, cpu = time.perf_counter(), time.process_time()
                await service.handle_commands(batch)
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
            pg = (backend_seconds(pids) - pg_before) * 1e6 / (size * args.batches)
            w, c = statistics.median(walls), statistics.median(cpus)
            print(
                f"{size:>6} {w * 1e3:>9.2f} {c * 1e3:>8.2f} {c * 1e6 / size:>15.0f} {pg:>14.0f}",
                flush=True,
            )
    finally:
        await db.dispose()
        await admin.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument(
        "--sizes", type=lambda t: [int(x) for x in t.split(",")], default=[1, 10, 50, 100]
    )
    parser.add_argument("--batches", type=int, default=100, help="batches timed per size")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
