"""How fast the public status page answers with 90 days of history.

Starts ``aidpost serve`` once to create the databases, stops it, writes ``--days`` days of
check results (one per component every ``--interval`` seconds, with an outage a day) into
the status database, starts it again (prober off, so nothing else writes), and times
sequential and concurrent GETs of the HTML page and the JSON API. The first request of
each path is reported apart: it computes and keeps the past days' tallies.

    .venv/bin/python bench/status_page.py [--days 90] [--interval 60] [--requests 50]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Server, free_port, get_times, log, percentile, timed_get

PATHS = ("/statuspage", "/statuspage/api/v2/summary.json", "/statuspage/api/v2/uptime.json")


def fill(db: Path, days: int, interval: int) -> tuple[int, int]:
    """Check results for every component; returns (components, rows)."""
    con = sqlite3.connect(db)
    try:
        ids = [r[0] for r in con.execute("SELECT id FROM components")]
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        start = now - dt.timedelta(days=days)
        con.execute("UPDATE components SET created_at = ?", (start.isoformat(),))
        rows = []
        steps = int(days * 86400 / interval)
        for comp in ids:
            for i in range(steps):
                at = start + dt.timedelta(seconds=i * interval)
                # A 20-minute outage every day at 03:00.
                ok = not (at.hour == 3 and at.minute < 20)
                rows.append((comp, at.isoformat(), ok, False, 12.5, float(interval), ""))
        con.executemany(
            "INSERT INTO check_results (component_id, at, ok, degraded, response_ms, covers,"
            " detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        con.commit()
        return len(ids), len(rows)
    finally:
        con.close()


async def measure(base: str, requests: int, concurrency: int) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        for path in PATHS:
            first = await timed_get(client, path)
            sequential, together, rate = await get_times(client, path, requests, concurrency)
            print(
                f"{path:38} first {first:7.1f} ms | sequential median "
                f"{statistics.median(sequential):6.1f} ms p99 {percentile(sequential, 0.99):6.1f}"
                f" | {concurrency} at once median {statistics.median(together):6.1f} ms,"
                f" {rate:5.1f} req/s"
            )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--interval", type=int, default=60)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aidpost-bench-") as folder:
        data = Path(folder)
        env = {"AIDPOST_STATUS_PROBER": "false", "AIDPOST_MAILER_TRANSPORT_URL": "memory:"}
        server = Server(free_port(), data, env)
        server.start()
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            await server.wait_ready(client)
        server.stop()
        t0 = time.perf_counter()
        components, rows = fill(data / "status.db", args.days, args.interval)
        log(f"{rows} results for {components} components in {time.perf_counter() - t0:.1f} s")
        server = Server(free_port(), data, env)
        server.start()
        try:
            async with httpx.AsyncClient(base_url=server.base_url) as client:
                await server.wait_ready(client)
            print(
                f"{components} components, {args.days} days of results every "
                f"{args.interval} s ({rows} rows), one process on SQLite"
            )
            await measure(server.base_url, args.requests, args.concurrency)
        finally:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
