"""`aidpost serve` as a process: keep-alive works and every request leaves a JSON log line."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.contract.server import serve


def test_keep_alive_and_json_access_log(tmp_path: Path) -> None:
    with serve(tmp_path) as base, httpx.Client(base_url=base) as client:
        ids = []
        for _ in range(5):  # one connection, five requests
            r = client.get("/version", headers={"X-Request-ID": f"keep-{len(ids)}"})
            assert r.status_code == 200
            ids.append(r.headers["x-request-id"])
        assert ids == [f"keep-{i}" for i in range(5)]
    lines = [
        json.loads(x)
        for x in (tmp_path / "server.log").read_text().splitlines()
        if x.startswith("{")
    ]
    access = [x for x in lines if x.get("logger") == "aidpost.access"]
    assert [x["request_id"] for x in access if x["path"] == "/version"] == ids
    assert not [x for x in lines if x.get("level") == "error"], "no error was logged"


def test_websockets_are_not_compressed(tmp_path: Path) -> None:
    """`aidpost serve` declines permessage-deflate: chat frames are small, and each
    compressed socket would hold ~45 KiB of zlib state (bench/connections.py)."""
    import asyncio

    import websockets

    async def handshake(base: str) -> str | None:
        url = base.replace("http://", "ws://") + "/messenger-api/connect"
        async with websockets.connect(url, compression="deflate") as ws:
            assert ws.response is not None
            return ws.response.headers.get("Sec-WebSocket-Extensions")

    with serve(tmp_path) as base:
        assert asyncio.run(handshake(base)) is None
