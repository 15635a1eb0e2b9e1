"""The edge's health checks with a real HAProxy: a gateway that answers its check late,
as one with a saturated event loop does, stays in rotation; one that is gone is taken out.

The configuration is ``aidpost.deploy.haproxy.render``'s, the one ``aidpost cluster`` and the
compose file use, with three stand-in gateways (plain HTTP servers on loopback): ``slow``
answers ``GET /status`` after 1.6 s (past the 1 s check interval), ``fast`` at once, and
``gone`` is a port nobody listens on. HAProxy's own view of them is read from its stats
socket.
"""

from __future__ import annotations

import csv
import http.server
import io
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aidpost.deploy.haproxy import CHECK, Edge, render
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


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    if shutil.which("haproxy") is None:
        if ON_CI:
            pytest.fail("haproxy is not installed on CI")
        pytest.skip("haproxy not installed")
    slow, fast = _stand_in("slow", SLOW_CHECK_SECONDS), _stand_in("fast", 0)
    gone = _free_port()
    port, stats = _free_port(), tmp_path / "stats.sock"
    servers = {
        "gateways": [
            f"server slow 127.0.0.1:{slow.server_address[1]} {CHECK}",
            f"server fast 127.0.0.1:{fast.server_address[1]} {CHECK}",
            f"server gone 127.0.0.1:{gone} {CHECK}",
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
        yield f"http://127.0.0.1:{port}", stats
    finally:
        proc.terminate()
        proc.wait(10)
        for server in (slow, fast):
            server.shutdown()
            server.server_close()


def test_a_late_check_keeps_a_gateway_in_and_a_gone_one_is_taken_out(
    edge: tuple[str, Path],
) -> None:
    base, stats = edge
    # Long enough for four checks of each, three of them failed ones for ``gone``.
    time.sleep(6)
    states = _server_states(stats)
    assert states["slow"] == "UP", states
    assert states["fast"] == "UP", states
    assert states["gone"].startswith("DOWN"), states
    # Both live gateways take new sockets (least connections; equal loads alternate), and
    # nothing is sent to the one that is gone.
    served = set()
    for _ in range(8):
        with httpx.Client(base_url=base) as client:  # a new connection each time
            r = client.get("/messenger-api/connect")
            assert r.status_code == 200, r.text
            served.add(r.text)
    assert served == {"slow", "fast"}


def test_the_local_edge_holds_what_its_file_descriptors_allow(edge: tuple[str, Path]) -> None:
    """``aidpost cluster``'s edge sets no maxconn: HAProxy derives it from its descriptor
    limit (two per connection) instead of stopping at a fixed figure below it."""
    info = dict(
        line.split(": ", 1) for line in _ask(edge[1], "show info").splitlines() if ": " in line
    )
    assert int(info["Maxconn"]) >= int(info["Ulimit-n"]) // 2 - 100, info
