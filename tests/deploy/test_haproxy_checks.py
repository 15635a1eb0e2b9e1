"""The edge's health checks with a real HAProxy: a gateway that answers its check late,
as one with a saturated event loop does, stays in rotation; one that is gone is taken out.

The configuration is ``aidpost.deploy.haproxy.render``'s, the one ``aidpost cluster`` and the
compose file use, with three stand-in gateways (plain HTTP servers on loopback): ``slow``
answers ``GET /status`` after 1.6 s (past the 1 s check interval), ``fast`` at once, and
``going`` at once until the test stops it. HAProxy's own view of them is read from its stats
socket.
"""

from __future__ import annotations

import csv
import http.server
import io
import resource
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from aidpost.deploy.haproxy import CHECK, FD_HARD_LIMIT, Edge, render
from tests.conftest import ON_CI

SLOW_CHECK_SECONDS = 1.6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stand_in(name: str, check_delay: float) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/status":
                time.sleep(check_delay)
            body = name.encode()
            try:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # HAProxy stopped waiting (it is being stopped)

        def log_message(self, *_args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _ask(stats: Path, command: str) -> str:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(stats))
        s.sendall(command.encode() + b"\n")
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    return raw.decode()


def _server_states(stats: Path) -> dict[str, str]:
    rows = csv.DictReader(io.StringIO(_ask(stats, "show stat").lstrip("# ")))
    return {r["svname"]: r["status"] for r in rows if r["pxname"] == "gateways"}


@dataclass
class Edge_:
    base: str
    stats: Path
    going: http.server.ThreadingHTTPServer  # a gateway that is up, until the test stops it


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Edge_]:
    if shutil.which("haproxy") is None:
        if ON_CI:
            pytest.fail("haproxy is not installed on CI")
        pytest.skip("haproxy not installed")
    slow, fast = _stand_in("slow", SLOW_CHECK_SECONDS), _stand_in("fast", 0)
    going = _stand_in("going", 0)
    port, stats = _free_port(), tmp_path / "stats.sock"
    servers = {
        "gateways": [
            f"server {name} 127.0.0.1:{server.server_address[1]} {CHECK}"
            for name, server in (("slow", slow), ("fast", fast), ("going", going))
        ]
    }
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        render(Edge(public=f"127.0.0.1:{port}"), servers, global_lines=[f"stats socket {stats}"])
    )
    proc = subprocess.Popen(["haproxy", "-f", str(config)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not stats.exists():
            assert time.monotonic() < deadline, "haproxy did not start"
            assert proc.poll() is None, "haproxy refused the configuration"
            time.sleep(0.05)
        yield Edge_(f"http://127.0.0.1:{port}", stats, going)
    finally:
        proc.terminate()
        proc.wait(10)
        for server in (slow, fast, going):
            server.shutdown()
            server.server_close()


def test_a_late_check_keeps_a_gateway_in_and_a_gone_one_is_taken_out(edge: Edge_) -> None:
    started = time.monotonic()
    deadline = started + 10
    while set(_server_states(edge.stats).values()) != {"UP"}:
        assert time.monotonic() < deadline, _server_states(edge.stats)
        time.sleep(0.2)
    # A process that goes away refuses its checks at once: out after the third, ~2-3 s.
    edge.going.shutdown()
    edge.going.server_close()
    stopped = time.monotonic()
    # (HAProxy says "UP 1/3", "UP 2/3" while the failed checks add up.)
    while not (states := _server_states(edge.stats))["going"].startswith("DOWN"):
        assert time.monotonic() - stopped < 6, states
        assert states["slow"] == "UP", states
        time.sleep(0.1)
    out_after = time.monotonic() - stopped
    assert out_after >= 1.5, f"out after {out_after:.1f} s: before its third failed check"
    # The slow one, answering each check in 1.6 s (past the 1 s interval), stayed in all
    # along: at least four of its checks by now.
    time.sleep(max(0.0, started + 6 - time.monotonic()))
    states = _server_states(edge.stats)
    assert states["slow"] == "UP" and states["fast"] == "UP", states
    # Both live gateways take new sockets (least connections; equal loads alternate), and
    # nothing is sent to the one that is gone.
    served = set()
    for _ in range(8):
        with httpx.Client(base_url=edge.base) as client:  # a new connection each time
            r = client.get("/messenger-api/connect")
            assert r.status_code == 200, r.text
            served.add(r.text)
    assert served == {"slow", "fast"}


def test_the_local_edge_holds_what_its_file_descriptors_allow(edge: Edge_) -> None:
    """``aidpost cluster``'s edge sets no maxconn: HAProxy derives it from the descriptor
    limit it inherits (two per connection; capped by ``fd-hard-limit``) instead of stopping
    at a fixed figure below it."""
    info = dict(
        line.split(": ", 1) for line in _ask(edge.stats, "show info").splitlines() if ": " in line
    )
    inherited = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], FD_HARD_LIMIT)
    assert int(info["Maxconn"]) >= inherited // 2 - 100, (info, inherited)
