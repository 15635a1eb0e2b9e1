"""The checks the prober runs: HTTP(S), TCP connect, TLS certificate.

A check never raises: it returns an ``Outcome`` (ok or not, degraded or not, how long it
took, and a one-line detail for the operator).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import ssl
import time
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Outcome:
    ok: bool
    ms: float | None
    detail: str
    degraded: bool = False


@dataclass(frozen=True)
class Spec:
    """What to check, as stored on a component."""

    kind: str
    target: str
    timeout: float
    expect: dict[str, Any]
    degraded_ms: int | None = None
    tls_warn_days: int = 14


def split_host_port(target: str) -> tuple[str, int]:
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port, got {target!r}")
    return host.strip("[]"), int(port)


def _slow(spec: Spec, ms: float) -> bool:
    return spec.degraded_ms is not None and ms > spec.degraded_ms


async def run(spec: Spec, client: httpx.AsyncClient) -> Outcome:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(spec.timeout):
            if spec.kind == "http":
                outcome = await _http(spec, client)
            elif spec.kind == "tcp":
                outcome = await _tcp(spec)
            elif spec.kind == "tls":
                outcome = await _tls(spec)
            else:
                return Outcome(True, None, "not checked (manual)")
    except TimeoutError:
        return Outcome(False, None, f"no answer within {spec.timeout:g} s")
    except Exception as exc:  # whatever goes wrong is the check failing, never the prober
        text = str(exc) or type(exc).__name__
        return Outcome(False, None, f"{type(exc).__name__}: {text}"[:500])
    ms = (time.perf_counter() - started) * 1000
    degraded = outcome.degraded or (outcome.ok and _slow(spec, ms))
    detail = outcome.detail + (f"; slower than {spec.degraded_ms} ms" if _slow(spec, ms) else "")
    return Outcome(outcome.ok, round(ms, 2), detail, degraded)


async def _http(spec: Spec, client: httpx.AsyncClient) -> Outcome:
    response = await client.get(spec.target, timeout=spec.timeout, follow_redirects=False)
    if spec.expect.get("check"):
        # One check of an aidpost /status: its own verdict, whether or not another check
        # of the same process fails (then the answer is 503).
        detail = _named_check(response, spec.expect["check"])
        return Outcome(detail.startswith("ok"), None, detail)
    expected = spec.expect.get("status") or list(range(200, 400))
    if response.status_code not in expected:
        return Outcome(False, None, f"HTTP {response.status_code}")
    contains = spec.expect.get("contains")
    if contains and contains not in response.text:
        return Outcome(False, None, f"HTTP {response.status_code} without {contains!r}")
    return Outcome(True, None, f"HTTP {response.status_code}")


def _named_check(response: httpx.Response, name: str) -> str:
    """One check of an aidpost ``/status`` body: "ok: …" or why not."""
    try:
        check = json.loads(response.content)["checks"][name]
    except (ValueError, KeyError, TypeError, IndexError):
        check = None
    if not isinstance(check, dict):
        return f"HTTP {response.status_code}: no check {name!r} in the answer"
    if check.get("ok") is True:
        return f"ok: {check.get('detail', '')}"
    return f"{name}: {check.get('detail', 'failing')}"


async def _tcp(spec: Spec) -> Outcome:
    host, port = split_host_port(spec.target)
    _reader, writer = await asyncio.open_connection(host, port)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return Outcome(True, None, f"connected to {host}:{port}")


async def _tls(spec: Spec) -> Outcome:
    host, port = split_host_port(spec.target)
    context = ssl.create_default_context()
    if spec.expect.get("cafile"):
        context.load_verify_locations(cafile=spec.expect["cafile"])
    _reader, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname=host)
    try:
        cert = writer.get_extra_info("peercert") or {}
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
    not_after = cert.get("notAfter")
    if not not_after:
        return Outcome(False, None, "no certificate presented")
    expires = dt.datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after), dt.UTC)
    days = (expires - dt.datetime.now(dt.UTC)).total_seconds() / 86400
    detail = f"certificate valid until {expires:%Y-%m-%d} ({days:.0f} days)"
    return Outcome(True, None, detail, degraded=days < spec.tls_warn_days)
