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

``--chats`` and ``--history`` make the database larger than PostgreSQL's buffers, as a
long event's is: that many chats, and that many messages stored in them beforehand (ids
made as the service makes them, COPY'd in), with the batches spread over all the chats.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import statistics
import time

import asyncpg
from sqlalchemy import text

from aidpost.core.bus import Event
from aidpost.core.clock import SystemClock
from aidpost.core.db import Database
from aidpost.core.directory import LocalDirectory
from aidpost.core.hub import MemoryHub
from aidpost.core.migrate import upgrade
from aidpost.messenger.models import Chat
from aidpost.messenger.service import MessengerService, new_id

DATABASE = "aidpost_bench_consumer"


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
            "payload": {"chatId": chat_id(chat), "message": "x" * 100, "clientId": f"k{key}"},
        },
    )


def chat_id(n: int) -> str:
    return f"chat{n:06}"


async def store_history(args: argparse.Namespace, chats: int) -> None:
    """``args.history`` messages, round-robin over the chats, then the chats' counters."""
    conn = await asyncpg.connect(f"{args.server}/{DATABASE}")
    try:
        now = dt.datetime.now(dt.UTC)
        began = time.perf_counter()
        step = 100_000
        for start in range(0, args.history, step):
            rows = [
                (new_id(), chat_id(n % chats), n // chats + 1, n % chats + 1, 0, "x" * 100,
                 now, None, None, f"h{n}")
                for n in range(start, min(start + step, args.history))
            ]  # fmt: skip
            await conn.copy_records_to_table(
                "messages",
                records=rows,
                columns=["id", "chat_id", "seq", "author_id", "from_organizer", "content",
                         "time_sent", "lat", "lng", "client_id"],
            )  # fmt: skip
        await conn.execute(
            "UPDATE chats SET last_seq = c.n FROM (SELECT chat_id, max(seq) AS n FROM messages"
            " GROUP BY chat_id) AS c WHERE chats.id = c.chat_id"
        )
        await conn.execute("CHECKPOINT")
        size = await conn.fetchval("SELECT pg_size_pretty(pg_total_relation_size('messages'))")
        print(f"stored {args.history} messages over {chats} chats ({size} with indexes) "
              f"in {time.perf_counter() - began:.0f} s", flush=True)  # fmt: skip
    finally:
        await conn.close()


async def pages_read(service: MessengerService, admin: asyncpg.Connection) -> int:
    """Pages the database's backends did not find in PostgreSQL's buffers so far. A
    backend reports its counts when idle at least a second after its last report: wait,
    end one more transaction, then read."""
    await asyncio.sleep(1.1)
    async with service.db.session() as session:
        await session.execute(text("SELECT 1"))
    await asyncio.sleep(0.2)
    found = await admin.fetchval(
        "SELECT blks_read FROM pg_stat_database WHERE datname = $1", DATABASE
    )
    return int(found)


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
        chats = args.chats
        async with db.transaction() as session:
            for i in range(chats):
                session.add(
                    Chat(
                        id=chat_id(i),
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
        if args.history:
            await store_history(args, chats)
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
        more = ("pg µs/message", 14), ("pages read/message", 19)
        print(" ".join(f"{h:>{w}}" for h, w in (*heads, *more)))
        for size in args.sizes:
            walls, cpus = [], []
            pg_before = backend_seconds(pids)
            read_before = await pages_read(service, admin)
            for _ in range(args.batches):
                batch = []
                for _ in range(size):
                    key += 1
                    batch.append(send(random.randrange(chats), key))
                wall, cpu = time.perf_counter(), time.process_time()
                await service.handle_commands(batch)
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
            pg = (backend_seconds(pids) - pg_before) * 1e6 / (size * args.batches)
            read = (await pages_read(service, admin) - read_before) / (size * args.batches)
            w, c = statistics.median(walls), statistics.median(cpus)
            print(
                f"{size:>6} {w * 1e3:>9.2f} {c * 1e3:>8.2f} {c * 1e6 / size:>15.0f} {pg:>14.0f}"
                f" {read:>19.2f}",
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
    parser.add_argument("--chats", type=int, default=100, help="chats the sends go to")
    parser.add_argument("--history", type=int, default=0, help="messages stored beforehand")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
