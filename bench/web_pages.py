"""How heavy and how fast the web UIs' pages are (the participant app must suit a cheap
phone on a poor network).

Starts ``aidpost serve --demo``, signs in as the demo participant and the demo support
user with the pages' own forms, then for each page: the bytes of the HTML and of every
stylesheet and script it loads (as sent, and gzip-compressed as a proxy would), and the
median and p99 time over ``--requests`` sequential GETs and with ``--concurrency`` at once.
Each page is one or more API calls in process, so this is the page's whole cost.

    .venv/bin/python bench/web_pages.py [--requests 50] [--concurrency 10]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import re
import statistics
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Server, free_port, get_times, log, percentile, timed_get

from aidpost.demo import DEMO_PASSWORD

PAGES = {
    "participant": ["/app/help", "/app/events/1", "/app/chats", "/app/settings"],
    "support": ["/console/live", "/console/events", "/console/issues", "/console/archives"],
}
ASSET = re.compile(r'(?:href|src)="(/web/static/[^"]+\.(?:css|js))"')
IMPORT = re.compile(r'import (?:[^"]* from )?"(/web/static/[^"]+\.js)"')


async def sign_in(client: httpx.AsyncClient, ui: str, email: str) -> None:
    page = await client.get(f"/{ui}/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf, page.text[:300]
    r = await client.post(
        f"/{ui}/sign-in", data={"csrf": csrf.group(1), "email": email, "password": DEMO_PASSWORD}
    )
    if r.status_code != 303:
        raise RuntimeError(f"{ui} sign-in: HTTP {r.status_code} {r.text[:200]}")


async def weight(client: httpx.AsyncClient, path: str) -> tuple[int, int, int, int]:
    """(HTML bytes, gzip), (assets bytes, gzip): what a first visit downloads."""
    page = await client.get(path)
    html = page.content
    assets = b""
    todo, seen = list(dict.fromkeys(ASSET.findall(page.text))), set()
    while todo:  # the scripts' own module imports too
        asset = todo.pop()
        if asset in seen:
            continue
        seen.add(asset)
        body = (await client.get(asset)).content
        assets += body
        todo.extend(IMPORT.findall(body.decode()))
    return len(html), len(gzip.compress(html)), len(assets), len(gzip.compress(assets))


async def measure(base: str, requests: int, concurrency: int) -> None:
    who = {"participant": ("app", "participant"), "support": ("console", "support")}
    for role, paths in PAGES.items():
        ui, user = who[role]
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            await sign_in(client, ui, f"{user}@demo.aidpost.example")
            for path in paths:
                html, html_gz, assets, assets_gz = await weight(client, path)
                await timed_get(client, path)
                sequential, together, rate = await get_times(client, path, requests, concurrency)
                print(
                    f"{path:20} html {html / 1024:5.1f} KiB ({html_gz / 1024:4.1f} gz) "
                    f"+ css/js {assets / 1024:5.1f} KiB ({assets_gz / 1024:4.1f} gz) | "
                    f"median {statistics.median(sequential):5.1f} ms p99 "
                    f"{percentile(sequential, 0.99):5.1f} | {concurrency} at once median "
                    f"{statistics.median(together):6.1f} ms, {rate:5.1f} pages/s"
                )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aidpost-bench-") as folder:
        env = {"AIDPOST_STATUS_PROBER": "false", "AIDPOST_MAILER_TRANSPORT_URL": "memory:"}
        server = Server(free_port(), Path(folder), env)
        server.start()
        try:
            async with httpx.AsyncClient(base_url=server.base_url) as client:
                await server.wait_ready(client)
            log("one process on SQLite, demo data; the load generator shares the 2 cores")
            await measure(server.base_url, args.requests, args.concurrency)
        finally:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
