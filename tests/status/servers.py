"""Real servers on loopback for the checks and webhooks: a small HTTP server with canned
answers (and a record of what it was sent), and TLS certificates made on the spot."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aidpost.deploy.secrets import self_signed


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpServer:
    """Answers ``routes[path] = (status, body, delay seconds)``; records every request."""

    routes: dict[str, tuple[int, bytes, float]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.received.append(Received(method, path, headers, body))
            status, answer, delay = self.routes.get(path, (404, b"not here", 0.0))
            if delay:
                await asyncio.sleep(delay)
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Length: {len(answer)}\r\n"
                "Content-Type: text/plain\r\nConnection: close\r\n\r\n".encode()
                + answer
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def http_server() -> AsyncIterator[HttpServer]:
    server = HttpServer()
    listener = await asyncio.start_server(server._handle, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        await listener.wait_closed()


def status_body(**checks: bool) -> bytes:
    """An aidpost ``/status`` answer with the given checks."""
    detail = {n: {"ok": ok, "detail": "fine" if ok else "broken"} for n, ok in checks.items()}
    return json.dumps({"component": "all", "live": True, "ready": all(checks.values()),
                       "checks": detail}).encode()  # fmt: skip


def certificate(folder: Path, days: float, name: str = "localhost") -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` valid from two days ago for ``days`` more days
    (negative: already expired). Returns (certificate, key) files."""
    pem = self_signed(name, days=days, since_days=2)
    split = pem.index(b"-----BEGIN PRIVATE KEY-----")
    cert_file, key_file = folder / f"{name}-{days}.crt", folder / f"{name}-{days}.key"
    cert_file.write_bytes(pem[:split])
    key_file.write_bytes(pem[split:])
    return cert_file, key_file


@asynccontextmanager
async def tls_server(cert: Path, key: Path) -> AsyncIterator[int]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    async def handle(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    listener = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    try:
        yield listener.sockets[0].getsockname()[1]
    finally:
        listener.close()
        await listener.wait_closed()
