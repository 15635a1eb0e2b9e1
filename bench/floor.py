"""The floor: what one loopback write of a chat frame costs this machine, from Python.

Issue #5 gives the gateway's CPU per delivered frame as a multiple of this. A frame is what
a gateway sends for one message to one socket: a WebSocket text frame (server to client,
unmasked) carrying a ~100-byte message in ESME's ``new_message`` shape. Two floors:

* ``socket.send``: one system call per frame on a connected TCP loopback socket, nothing
  else — the least any Python server can spend;
* ``asyncio``: ``transport.write`` of the frame on the event loop (what uvicorn's
  WebSocket implementations end in), one frame per loop iteration.

The reader drains in another process, so only the writer's CPU is counted (process time,
not wall time). Each floor is measured ``--runs`` times; the median is printed.

    .venv/bin/python bench/floor.py --frames 200000 --runs 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import socket
import statistics
import time

HOST = "127.0.0.1"


def frame() -> bytes:
    message = {
        "type": "new_message",
        "payload": {"chatId": 123456, "authorType": 1, "content": "x" * 100, "seq": 1},
    }
    body = json.dumps(message, separators=(",", ":")).encode()
    assert 125 < len(body) < 1 << 16
    # FIN + text opcode, 16-bit length, unmasked (server to client)
    return bytes([0x81, 126]) + len(body).to_bytes(2, "big") + body


def _drain(port: int, total: int) -> None:
    with socket.create_connection((HOST, port)) as conn:
        received = 0
        while received < total:
            chunk = conn.recv(1 << 20)
            if not chunk:
                return
            received += len(chunk)


def _listen() -> tuple[socket.socket, int]:
    server = socket.socket()
    server.bind((HOST, 0))
    server.listen(1)
    port: int = server.getsockname()[1]
    return server, port


def _with_reader(total: int) -> tuple[socket.socket, multiprocessing.Process]:
    server, port = _listen()
    reader = multiprocessing.Process(target=_drain, args=(port, total))
    reader.start()
    conn, _ = server.accept()
    server.close()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn, reader


def send_floor(frames: int) -> float:
    """CPU microseconds per ``socket.send`` of one frame."""
    data = frame()
    conn, reader = _with_reader(frames * len(data))
    started = time.process_time()
    for _ in range(frames):
        conn.sendall(data)
    spent = time.process_time() - started
    conn.close()
    reader.join()
    return spent / frames * 1e6


def asyncio_floor(frames: int) -> float:
    """CPU microseconds per ``transport.write`` of one frame, one per loop iteration."""
    data = frame()
    conn, reader = _with_reader(frames * len(data))

    async def run() -> float:
        _, writer = await asyncio.open_connection(sock=conn)
        started = time.process_time()
        for i in range(frames):
            writer.write(data)
            if i % 64 == 0:
                await writer.drain()
            else:
                await asyncio.sleep(0)
        await writer.drain()
        spent = time.process_time() - started
        writer.close()
        await writer.wait_closed()
        return spent

    spent = asyncio.run(run())
    reader.join()
    return spent / frames * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"frame: {len(frame())} bytes; {args.frames} frames per run, {args.runs} runs")
    for name, floor in (("socket.send", send_floor), ("asyncio write", asyncio_floor)):
        runs = [floor(args.frames) for _ in range(args.runs)]
        spread = ", ".join(f"{r:.2f}" for r in runs)
        print(f"{name:<14} median {statistics.median(runs):.2f} µs CPU per frame  ({spread})")


if __name__ == "__main__":
    main()
