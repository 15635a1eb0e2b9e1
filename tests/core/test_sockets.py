"""The WebSocket fast lane: ``SocketRoutes`` answers its paths ahead of the routing and
the middleware, and the protocol ``aidpost serve`` gives uvicorn lets go of the handshake
once a socket is accepted (docs/performance.md, idle connections)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
import websockets
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from aidpost.core.http import SocketRoutes
from aidpost.core.sockets import Flag, Frames, Inbox, WebSocketProtocol


class Marker:
    """A middleware that labels what passed through it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("state", {})["through_middleware"] = True
        await self.app(scope, receive, send)


async def echo(ws: WebSocket) -> None:
    await ws.accept()
    ws_state = ws.scope.get("state", {})
    await ws.send_text("fast" if "through_middleware" not in ws_state else "slow")
    with contextlib.suppress(Exception):
        while True:
            await ws.send_text(await ws.receive_text())


async def flood(ws: WebSocket) -> None:
    """20 MB at a client that does not read at first: the server's writes must wait for
    the transport to drain (uvicorn's "may write" flag) and lose nothing."""
    await ws.accept()
    for i in range(2000):
        await ws.send_text(f"{i:06d}" + "x" * 10_000)
    await ws.close()


GONE: list[BaseException] = []  # what flushing to a socket whose client left raised
WRITES: list[int] = []  # the sizes of the socket's writes while ``batched`` flushed


async def batched(ws: WebSocket) -> None:
    """``Frames``: 20 MB in batches of 5 frames, one write each, at a client that does not
    read at first; then waits for the client to leave and flushes once more."""
    await ws.accept()
    frames = Frames(ws)
    await ws.send_text("one write" if frames.one_write else "one each")
    transport = ws._send.__self__.transport  # type: ignore[attr-defined]
    write = transport.write
    transport.write = lambda data: (WRITES.append(len(data)), write(data))[1]
    for i in range(2000):
        frames.add(f"{i:06d}" + "x" * 10_000)
        if len(frames.pending) == 5:
            assert not frames.full
            await frames.flush()
    frames.add("last")
    await frames.flush()
    await frames.flush()  # nothing pending: nothing sent
    transport.write = write
    for _ in range(7):
        frames.add("x" * 10_000)
    assert frames.full  # past 64 KiB
    with contextlib.suppress(WebSocketDisconnect):
        await ws.receive_text()
    frames.add("to nobody")
    try:
        await frames.flush()
    except BaseException as exc:
        GONE.append(exc)


def app() -> FastAPI:
    api = FastAPI()

    @api.websocket("/routed")
    async def routed(ws: WebSocket) -> None:
        await echo(ws)

    @api.get("/plain")
    async def plain() -> dict[str, str]:
        return {"ok": "yes"}

    api.add_middleware(Marker)
    api.add_middleware(SocketRoutes, routes={"/fast": echo, "/flood": flood, "/batched": batched})
    return api


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, uvicorn.Server]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app(), ws=WebSocketProtocol, log_config=None, lifespan="off")
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve(sockets=[sock]))
    for _ in range(500):
        if srv.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield f"127.0.0.1:{port}", srv
    finally:
        srv.should_exit = True
        await task
        sock.close()


async def test_socket_routes_skip_routing_and_middleware_only_for_their_paths(
    server: tuple[str, uvicorn.Server],
) -> None:
    address, _srv = server
    async with websockets.connect(f"ws://{address}/fast") as ws:
        assert await ws.recv() == "fast"
        await ws.send("hello")
        assert await ws.recv() == "hello"
    async with websockets.connect(f"ws://{address}/routed") as ws:
        assert await ws.recv() == "slow"  # other sockets take the usual way
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://{address}/plain")).json() == {"ok": "yes"}
        assert (await client.get(f"http://{address}/fast")).status_code == 404
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(f"ws://{address}/nowhere"):
            pass


async def test_the_protocol_lets_go_of_the_handshake(server: tuple[str, uvicorn.Server]) -> None:
    address, srv = server
    extra = {"X-Padding": "p" * 2000}
    async with websockets.connect(f"ws://{address}/fast", additional_headers=extra) as ws:
        assert await ws.recv() == "fast"
        protocols = [c for c in srv.server_state.connections if isinstance(c, WebSocketProtocol)]
        assert len(protocols) == 1
        assert "request" not in vars(protocols[0]) and "response" not in vars(protocols[0])
        for text in ("still", "works"):  # and the socket goes on as before
            await ws.send(text)
            assert await ws.recv() == text


async def test_many_frames_both_ways_in_order(server: tuple[str, uvicorn.Server]) -> None:
    address, _srv = server
    async with websockets.connect(f"ws://{address}/fast") as ws:
        assert await ws.recv() == "fast"
        for i in range(500):  # without waiting: the server's inbox fills and drains
            await ws.send(str(i))
        assert [await ws.recv() for _ in range(500)] == [str(i) for i in range(500)]
    async with websockets.connect(f"ws://{address}/flood", max_size=2**20) as ws:
        await asyncio.sleep(1)  # the server's buffer fills: its writes wait
        got = [frame[:6] async for frame in ws]
        assert got == [f"{i:06d}" for i in range(2000)]


async def test_frames_queued_for_a_socket_go_out_together_in_order(
    server: tuple[str, uvicorn.Server],
) -> None:
    address, _srv = server
    GONE.clear()
    WRITES.clear()
    batched = websockets.connect(f"ws://{address}/batched", max_size=2**20, compression=None)
    async with batched as ws:
        assert await ws.recv() == "one write"  # the protocol's path, not one ASGI send each
        await asyncio.sleep(1)  # the server's buffer fills: its writes wait
        got = [(await ws.recv())[:6] for _ in range(2001)]
        assert got == [f"{i:06d}" for i in range(2000)] + ["last"]
    # One write per flush: 400 of five frames (10,006 characters and a 4-byte header
    # each), then "last".
    assert WRITES == [5 * 10_010] * 400 + [6], WRITES[:5]
    for _ in range(100):
        if GONE:
            break
        await asyncio.sleep(0.02)
    assert len(GONE) == 1 and isinstance(GONE[0], WebSocketDisconnect), GONE


async def test_inbox_and_flag_behave_like_asyncio_queue_and_event() -> None:
    inbox = Inbox[int]()
    assert inbox.empty()
    getter = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait(1)
    inbox.put_nowait(2)
    assert await getter == 1 and not inbox.empty()
    assert await inbox.get() == 2 and inbox.empty()
    cancelled = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    cancelled.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await cancelled
    inbox.put_nowait(3)  # nothing lost to the cancelled get
    assert await inbox.get() == 3
    woken = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    inbox.wake()  # with nothing queued: None (the gateway's idle writer retires on it)
    assert await woken is None
    bounded = Inbox[int](2)
    bounded.put_nowait(1)
    bounded.put_nowait(2)
    with pytest.raises(asyncio.QueueFull):
        bounded.put_nowait(3)
    assert bounded.qsize() == 2

    flag = Flag()
    assert not flag.is_set()
    waiters = [asyncio.create_task(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    waiters[0].cancel()  # one waiter giving up leaves the others waiting
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters[1:])
    flag.set()
    assert await asyncio.gather(*waiters[1:]) == [True, True]
    assert await flag.wait() is True  # set: no wait
    flag.clear()
    late = asyncio.create_task(flag.wait())
    await asyncio.sleep(0.01)
    assert not late.done()
    flag.set()
    assert await late is True
