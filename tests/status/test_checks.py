"""The prober's checks against real servers on loopback: HTTP(S) answers and aidpost
``/status`` bodies, TCP connects, TLS certificates near or past their end."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from aidpost.status.checks import Spec, run, split_host_port
from tests.status.servers import certificate, http_server, status_body, tls_server


def spec(kind: str, target: str, **kw: Any) -> Spec:
    return Spec(
        kind=kind,
        target=target,
        timeout=kw.pop("timeout", 2.0),
        expect=kw.pop("expect", {}),
        **kw,
    )


async def test_http_answers() -> None:
    async with http_server() as server, httpx.AsyncClient() as client:
        server.routes = {
            "/ok": (200, b"all fine", 0.0),
            "/down": (503, b"nope", 0.0),
            "/moved": (302, b"", 0.0),
            "/slow": (200, b"late", 0.3),
            "/status": (503, status_body(organizer_db=True, mailer_db=False), 0.0),
        }
        ok = await run(spec("http", server.url + "/ok"), client)
        assert ok.ok and not ok.degraded and ok.ms is not None and ok.detail == "HTTP 200"
        down = await run(spec("http", server.url + "/down"), client)
        assert not down.ok and down.detail == "HTTP 503"
        assert (await run(spec("http", server.url + "/moved"), client)).ok  # 3xx is an answer
        strict = spec("http", server.url + "/moved", expect={"status": [200]})
        assert not (await run(strict, client)).ok
        missing = spec("http", server.url + "/ok", expect={"contains": "healthy"})
        assert not (await run(missing, client)).ok
        slow = await run(spec("http", server.url + "/slow", degraded_ms=100), client)
        assert slow.ok and slow.degraded and "slower than 100 ms" in slow.detail
        late = await run(spec("http", server.url + "/slow", timeout=0.1), client)
        assert not late.ok and late.detail == "no answer within 0.1 s"
        # One check of an aidpost /status: its own verdict, whatever the others say.
        organizer = await run(
            spec("http", server.url + "/status", expect={"check": "organizer_db"}), client
        )
        assert organizer.ok and organizer.detail == "ok: fine"
        mailer = await run(
            spec("http", server.url + "/status", expect={"check": "mailer_db"}), client
        )
        assert not mailer.ok and mailer.detail == "mailer_db: broken"
        unknown = await run(spec("http", server.url + "/ok", expect={"check": "x_db"}), client)
        assert not unknown.ok and "no check 'x_db'" in unknown.detail
        port = server.port
    async with httpx.AsyncClient() as client:  # the server is gone
        gone = await run(spec("http", f"http://127.0.0.1:{port}/ok"), client)
        assert not gone.ok and gone.detail.startswith("ConnectError")


async def test_tcp_connects() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    async with httpx.AsyncClient() as client:
        assert (await run(spec("tcp", f"127.0.0.1:{port}"), client)).ok
        listener.close()
        refused = await run(spec("tcp", f"127.0.0.1:{port}"), client)
        assert not refused.ok and "ConnectionRefusedError" in refused.detail
        bad = await run(spec("tcp", "no-port-here"), client)
        assert not bad.ok and "expected host:port" in bad.detail


@pytest.mark.parametrize(("days", "ok", "degraded"), [(90, True, False), (5, True, True),
                                                      (-1, False, False)])  # fmt: skip
async def test_tls_certificates(tmp_path: Path, days: float, ok: bool, degraded: bool) -> None:
    cert, key = certificate(tmp_path, days)
    async with tls_server(cert, key) as port, httpx.AsyncClient() as client:
        check = spec("tls", f"localhost:{port}", expect={"cafile": str(cert)}, tls_warn_days=14)
        outcome = await run(check, client)
        assert (outcome.ok, outcome.degraded) == (ok, degraded), outcome.detail
        if ok:
            assert "certificate valid until" in outcome.detail
        else:
            assert "certificate has expired" in outcome.detail
        # Not trusted (no CA given): refused, as a browser would.
        untrusted = await run(spec("tls", f"localhost:{port}"), client)
        assert not untrusted.ok and "CERTIFICATE_VERIFY_FAILED" in untrusted.detail


async def test_tls_name_must_match(tmp_path: Path) -> None:
    cert, key = certificate(tmp_path, 90, name="other.test")
    async with tls_server(cert, key) as port, httpx.AsyncClient() as client:
        outcome = await run(spec("tls", f"localhost:{port}", expect={"cafile": str(cert)}), client)
        assert not outcome.ok and "localhost" in outcome.detail


def test_targets() -> None:
    assert split_host_port("db.internal:5432") == ("db.internal", 5432)
    assert split_host_port("[::1]:6379") == ("::1", 6379)
    for bad in ("db", ":5432", "db:0", "db:70000", "db:x"):
        with pytest.raises(ValueError):
            split_host_port(bad)
