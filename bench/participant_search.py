"""Load benchmark of participant event search (``GET /participant-api/events``).

What it measures: how fast one ``aidpost serve`` process (all components, SQLite, the
embedded default) answers event searches from many participants at once, with a festival's
worth of events in the participant read model. The script

1. starts its own ``aidpost serve --demo`` on a free 127.0.0.1 port, in a temporary data
   directory, with the per-address rate limit lifted (every client here is 127.0.0.1);
2. seeds agencies x events-per-agency events (default 10 x 30 = 300; approved agencies,
   varied names, descriptions and addresses, started in the last hour, ending tomorrow) through
   the Organizer API and waits until the participant read model, fed over the bus, has them;
3. signs up participants through ``POST /participant-api/auth/sign-up``;
4. runs ``--concurrency`` client tasks over one shared ``httpx.AsyncClient`` (as many
   connections as tasks; ``--pools N`` spreads them over N clients) for ``--seconds`` (or
   until ``--requests``), each calling
   ``GET /participant-api/events?query=<a word of the seeded names>`` in a loop, and without
   a query in ``--no-query-share`` of the calls, with a random participant's token;
5. prints the figures and stops the server.

How to read the output:

* ``requests`` / ``errors``: completed calls; anything but a 200 (or a transport error such
  as a timeout, listed by exception name) is an error and makes the exit status 1.
* ``throughput``: completed requests per second of wall time, from the first request to the
  last answer. It is a closed-loop figure: each task waits for its answer before asking
  again, so with a saturated server more concurrency means longer latency, not more req/s.
* ``latency``: per request as the client saw it (queueing in the server included), median,
  p90, p99 and max, in milliseconds (nearest-rank percentiles).
* ``server cpu``: CPU time of the server process (all its threads) during the load, as a
  share of one core. Near 100 % means the server's event loop is the limit (one Python
  process runs one request at a time). ``client cpu`` is this script's own share: the load
  generator runs on the same machine and competes for the same cores. When it nears 100 %
  and the server's share is well below, the figures measure the client, not the server:
  httpcore's pool (1.0.x) scans all its connections for every connection it examines, so its
  cost per request grows with the square of the pool size, and one pool of several hundred
  connections saturates a core first. ``--pools 10`` or more (same total connections)
  takes that out of the measurement.
* ``a query-less search lists N``: the Participant API answers a search with at most 200
  events (earliest start first) and has no paging, so with 300 events it lists 200.
* ``server rss``: resident memory of the server at the end (VmRSS) and its peak (VmHWM),
  from ``/proc/<pid>/status``.

Other ``AIDPOST_*`` settings in the caller's environment reach the server (for instance
``AIDPOST_LOG_LEVEL=WARNING``, which skips the per-request access log line); database and bus
URLs do not, so the server always runs on SQLite files in its temporary directory and the
in-memory bus. Setup requests use a new connection each; the load reuses connections.

Only 127.0.0.1 is contacted. Every wait is bounded in time; the server is stopped (SIGTERM,
then SIGKILL after a grace period) and the temporary directory removed on every exit path.

Example::

    .venv/bin/python bench/participant_search.py --concurrency 1000 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import math
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from common import (
    PASSWORD,
    SUPERADMIN,
    Server,
    bearer,
    client_cpu_seconds,
    expect,
    free_port,
    iso,
    log,
    percentile,
    sign_in,
)

import aidpost

READ_MODEL_TIMEOUT_S = 120.0

ADJECTIVES = (
    "Sunny", "Midnight", "Harbour", "Northern", "Golden", "Electric", "Riverside", "Summer",
    "Winter", "Grand", "Little", "Royal", "Wild", "Silver", "Urban", "Forest", "Ocean",
    "Velvet", "Crystal", "Baltic",
)  # fmt: skip
KINDS = (
    "Jazz", "Rock", "Folk", "Techno", "Food", "Film", "Book", "Marathon", "Cycling", "Mural",
    "Blues", "Opera", "Comedy", "Dance", "Cider", "Lantern", "Kite", "Chess", "Poetry",
    "Theatre",
)  # fmt: skip
SUFFIXES = (
    "Festival", "Fair", "Parade", "Weekend", "Days", "Nights", "Run", "Gathering", "Week",
    "Carnival",
)  # fmt: skip
CITIES = (
    "Warsaw", "Kraków", "Gdańsk", "Wrocław", "Poznań", "Łódź", "Lublin", "Szczecin", "Toruń",
    "Katowice",
)  # fmt: skip
STREETS = (
    "Park Avenue", "Market Square", "River Road", "Castle Hill", "Harbour Quay", "Stadium Way",
    "Old Town", "Meadow Lane", "Station Street", "Forest Path",
)  # fmt: skip
FEATURES = (
    "two stages and a food court",
    "a camping field by the river",
    "first aid tents near every gate",
    "a family zone and quiet area",
    "night buses after the last show",
    "water points along the route",
)


# -- seeding -----------------------------------------------------------------------------------


@dataclass
class Seeded:
    names: list[str] = field(default_factory=list)
    tags: dict[str, int] = field(default_factory=dict)  # agency tag -> its event count


def event_body(rng: random.Random, agency: str, now: dt.datetime) -> dict[str, Any]:
    adjective, kind, suffix = rng.choice(ADJECTIVES), rng.choice(KINDS), rng.choice(SUFFIXES)
    city, street, postcode = rng.choice(CITIES), rng.choice(STREETS), rng.randint(100, 999)
    return {
        "name": f"{adjective} {kind} {suffix} {city} {rng.randint(2025, 2027)}",
        "description": (
            f"{kind} {suffix.lower()} in {city} with {rng.choice(FEATURES)}. Organised by {agency}."
        ),
        "address": f"{street} {rng.randint(1, 120)}, {rng.randint(10, 99)}-{postcode} {city}",
        "lat": round(49.0 + rng.random() * 5.8, 5),
        "lng": round(14.1 + rng.random() * 10.0, 5),
        "timeStart": iso(now - dt.timedelta(minutes=rng.randint(1, 59))),
        "timeEnd": iso(now + dt.timedelta(days=1, minutes=rng.randint(0, 600))),
    }


async def create_events(
    client: httpx.AsyncClient, token: str, bodies: list[dict[str, Any]]
) -> None:
    """Create the events as their agency's owner, a few at a time."""
    gate = asyncio.Semaphore(8)

    async def create(event: dict[str, Any]) -> None:
        async with gate:
            r = await client.post("/organizer-api/agency/events", json=event, headers=bearer(token))
        expect(r, 201, "create event")

    await asyncio.gather(*(create(b) for b in bodies))


async def seed_events(
    client: httpx.AsyncClient, agencies: int, per_agency: int, rng: random.Random
) -> Seeded:
    admin = await sign_in(client, "organizer-api", *SUPERADMIN)
    seeded = Seeded()
    run = uuid.uuid4().hex[:6]
    used: set[str] = set()
    for a in range(agencies):
        tag = f"bench{run}a{a:03d}"
        agency = f"Bench Safety Crew {a + 1} {tag}"
        owner = f"owner-{tag}@bench.aidpost.example"
        body = {
            "agency": {
                "name": agency,
                "address": f"{rng.choice(STREETS)} {a + 1}, {rng.choice(CITIES)}",
                "website": f"https://crew{a + 1}.bench.aidpost.example",
            },
            "owner": {
                "email": owner,
                "password": PASSWORD,
                "confirmPassword": PASSWORD,
                "firstName": "Olga",
                "lastName": f"Owner{a + 1}",
                "phoneNumber": "+48123456789",
            },
        }
        created = expect(
            await client.post("/organizer-api/agency", json=body), 201, "register agency"
        )
        expect(
            await client.patch(
                f"/organizer-api/admin/agencies/{created['id']}/verify",
                json={"approved": True},
                headers=bearer(admin),
            ),
            200,
            "approve agency",
        )
        token = await sign_in(client, "organizer-api", owner, PASSWORD)
        now = dt.datetime.now(dt.UTC)
        bodies: list[dict[str, Any]] = []
        for _ in range(100 * per_agency):  # names are unique; a few draws repeat one
            if len(bodies) == per_agency:
                break
            event = event_body(rng, agency, now)
            if event["name"] not in used:
                used.add(event["name"])
                bodies.append(event)
        if len(bodies) < per_agency:
            raise RuntimeError("could not draw enough distinct event names")
        await create_events(client, token, bodies)
        seeded.names += [b["name"] for b in bodies]
        seeded.tags[tag] = per_agency
        log(f"agency {a + 1}/{agencies}: {per_agency} events")
    return seeded


async def sign_up(client: httpx.AsyncClient, count: int) -> list[str]:
    gate = asyncio.Semaphore(4)
    run = uuid.uuid4().hex[:6]

    async def one(i: int) -> str:
        body = {
            "email": f"participant-{run}-{i}@bench.aidpost.example",
            "password": PASSWORD,
            "confirmPassword": PASSWORD,
            "phoneNumber": f"+48600{i:06d}",
        }
        async with gate:
            r = await client.post("/participant-api/auth/sign-up", json=body)
        token: str = expect(r, 201, "participant sign-up")["token"]
        return token

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def wait_for_read_model(client: httpx.AsyncClient, token: str, seeded: Seeded) -> int:
    """Poll until every seeded event is searchable; return what a query-less search lists.

    A search lists at most 200 events, so completeness is checked agency by agency (each
    agency's tag is in its events' descriptions)."""
    deadline = time.monotonic() + READ_MODEL_TIMEOUT_S
    pending = dict(seeded.tags)
    while pending and time.monotonic() < deadline:
        for tag, expected in list(pending.items()):
            r = await client.get(
                "/participant-api/events", params={"query": tag}, headers=bearer(token)
            )
            if len(expect(r, 200, "search events")) >= expected:
                del pending[tag]
        if pending:
            await asyncio.sleep(0.25)
    if pending:
        raise RuntimeError(f"events of {len(pending)} agencies not searchable in time")
    r = await client.get("/participant-api/events", headers=bearer(token))
    return len(expect(r, 200, "search events"))


# -- load --------------------------------------------------------------------------------------


@dataclass
class Load:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    issued: int = 0
    first_start: float = math.inf
    last_end: float = 0.0


async def run_load(
    clients: list[httpx.AsyncClient],
    tokens: list[str],
    words: list[str],
    args: argparse.Namespace,
) -> Load:
    load = Load()
    deadline = time.monotonic() + args.seconds
    budget = args.requests if args.requests is not None else math.inf

    async def worker(seed: int, client: httpx.AsyncClient) -> None:
        rng = random.Random(seed)
        while time.monotonic() < deadline and load.issued < budget:
            load.issued += 1
            params = {} if rng.random() < args.no_query_share else {"query": rng.choice(words)}
            headers = bearer(rng.choice(tokens))
            started = time.perf_counter()
            load.first_start = min(load.first_start, started)
            try:
                r = await client.get("/participant-api/events", params=params, headers=headers)
                outcome = str(r.status_code)
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
            ended = time.perf_counter()
            load.last_end = max(load.last_end, ended)
            load.latencies.append(ended - started)
            load.statuses[outcome] += 1

    await asyncio.gather(
        *(
            worker(args.seed * 1_000_003 + i, clients[i % len(clients)])
            for i in range(args.concurrency)
        )
    )
    return load


def report(
    load: Load,
    args: argparse.Namespace,
    server_cpu: float,
    client_cpu: float,
    proc: dict[str, str],
    visible: int,
    seeded: int,
) -> None:
    total = len(load.latencies)
    errors = {k: v for k, v in sorted(load.statuses.items()) if k != "200"}
    wall = max(load.last_end - load.first_start, 1e-9)
    ordered = sorted(load.latencies)

    def ms(value: float) -> str:
        return f"{value * 1000:.1f}"

    limit = f", at most {args.requests} requests" if args.requests is not None else ""
    print(
        f"participant search: {args.concurrency} clients ({args.pools} pool(s)), "
        f"{args.seconds:g} s{limit}, "
        f"{seeded} seeded events (+1 demo), a query-less search lists {visible}, "
        f"{args.participants} participants, {args.no_query_share:.0%} without query"
    )
    print(f"requests:    {total}")
    if errors:
        listed = ", ".join(f"{k}: {v}" for k, v in errors.items())
        print(f"errors:      {sum(errors.values())} ({listed})")
    else:
        print("errors:      0")
    print(f"throughput:  {total / wall:.1f} req/s over {wall:.2f} s")
    print(
        f"latency ms:  median {ms(percentile(ordered, 0.5))}  p90 {ms(percentile(ordered, 0.9))}"
        f"  p99 {ms(percentile(ordered, 0.99))}  max {ms(ordered[-1] if ordered else math.nan)}"
    )
    print(
        f"server cpu:  {server_cpu:.1f} s = {server_cpu / wall:.0%} of one core"
        f" (threads: {proc.get('Threads', '?')});"
        f" client cpu: {client_cpu:.1f} s = {client_cpu / wall:.0%} of one core"
        f" ({os.cpu_count()} cores)"
    )
    print(
        f"server rss:  {proc.get('VmRSS', '?')} at the end, peak {proc.get('VmHWM', '?')}"
        f" (pid {args.server_pid})"
    )


# -- main --------------------------------------------------------------------------------------


async def bench(server: Server, args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    # Setup uses a fresh connection per request: it must not depend on keep-alive behaviour,
    # which the load below measures.
    fresh = httpx.Limits(max_keepalive_connections=0)
    timeout = httpx.Timeout(30.0)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=timeout, limits=fresh) as setup:
        await server.wait_ready(setup)
        log(f"server ready at {server.base_url} (pid {server.pid}, aidpost {aidpost.__version__})")
        started = time.monotonic()
        seeded = await seed_events(setup, args.agencies, args.events_per_agency, rng)
        tokens = await sign_up(setup, args.participants)
        visible = await wait_for_read_model(setup, tokens[0], seeded)
        log(
            f"seeded {len(seeded.names)} events and {len(tokens)} participants in "
            f"{time.monotonic() - started:.1f} s; a query-less search lists {visible}"
        )
    words = sorted({w for name in seeded.names for w in name.split() if not w.isdigit()})

    # Each pool holds as many connections as it has client tasks: no task waits for a
    # connection, and all pools together hold --concurrency connections.
    per_pool = math.ceil(args.concurrency / args.pools)
    limits = httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool)
    timeout = httpx.Timeout(args.timeout, pool=args.timeout)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=timeout)
            )
            for _ in range(args.pools)
        ]
        log(f"load: {args.concurrency} clients over {args.pools} pool(s) for {args.seconds:g} s")
        cpu0, client0 = server.cpu_seconds(), client_cpu_seconds()
        load = await run_load(clients, tokens, words, args)
        cpu1, client1 = server.cpu_seconds(), client_cpu_seconds()
    args.server_pid = server.pid
    report(
        load,
        args,
        cpu1 - cpu0,
        client1 - client0,
        server.proc_status(),
        visible,
        len(seeded.names),
    )
    failed = sum(v for k, v in load.statuses.items() if k != "200")
    return 1 if failed or not load.latencies else 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        epilog="See the module docstring (bench/participant_search.py) for how to read it.",
    )
    parser.add_argument("--concurrency", type=int, default=200, help="client tasks (200)")
    parser.add_argument("--seconds", type=float, default=15.0, help="load duration (15)")
    parser.add_argument(
        "--requests", type=int, help="stop after this many requests (still within --seconds)"
    )
    parser.add_argument("--agencies", type=int, default=10, help="agencies to seed (10)")
    parser.add_argument("--events-per-agency", type=int, default=30, help="events per agency (30)")
    parser.add_argument("--participants", type=int, default=50, help="participants (50)")
    parser.add_argument(
        "--no-query-share",
        type=float,
        default=0.1,
        help="share of searches without a query (0.1)",
    )
    parser.add_argument(
        "--pools",
        type=int,
        default=0,
        help="httpx.AsyncClient instances the tasks share round-robin (default: one per 10"
        " clients, so the load generator is not the bottleneck; see the docstring)",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="per-request timeout (60 s)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    args = parser.parse_args(argv)
    checks = {
        "--concurrency": 1 <= args.concurrency <= 10_000,
        "--seconds": 0 < args.seconds <= 3600,
        "--requests": args.requests is None or args.requests >= 1,
        "--agencies": 1 <= args.agencies <= 1000,
        "--events-per-agency": 1 <= args.events_per_agency <= 199,
        "--agencies x --events-per-agency": args.agencies * args.events_per_agency <= 20_000,
        "--participants": 1 <= args.participants <= 10_000,
        "--no-query-share": 0.0 <= args.no_query_share <= 1.0,
        "--pools": 0 <= args.pools <= args.concurrency,
        "--timeout": args.timeout > 0,
    }
    if args.pools == 0:
        args.pools = max(1, args.concurrency // 10)
    for name, ok in checks.items():
        if not ok:
            parser.error(f"{name} is out of range")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data_dir = Path(tempfile.mkdtemp(prefix="aidpost-bench-"))
    server = Server(free_port(), data_dir)
    try:
        server.start()
        return asyncio.run(bench(server, args))
    except (RuntimeError, httpx.HTTPError, OSError) as exc:
        log(f"failed: {exc!r}")
        log(f"server log tail:\n{server.log_tail()}")
        return 2
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
