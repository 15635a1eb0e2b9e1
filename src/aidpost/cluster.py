"""A local cluster on one machine: every component as its own processes on loopback, behind
HAProxy with health checks, on PostgreSQL and Redis (``aidpost cluster``).

The shape the scale-out and failover tests use, and a way to try it by hand::

    AIDPOST_CLUSTER_POSTGRES=postgresql://postgres@127.0.0.1:5432 \\
    AIDPOST_BUS_URL=redis://127.0.0.1:6379/0 aidpost cluster --gateways 3 --consumers 2

Each component gets its own PostgreSQL database (created if missing); HAProxy routes auth's
paths to auth, ``/messenger-api`` to the gateways (least connections, WebSockets
tunnelled), and each API prefix to its component; it checks ``GET /status`` every second
and takes a process out after two failures.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx


def wait_for_status(
    url: str, seconds: float, still_alive: Callable[[], None] = lambda: None
) -> None:
    """Until ``url/status`` answers 200; ``still_alive`` raises if the waiting is pointless."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        still_alive()
        try:
            if httpx.get(url + "/status", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Process:
    name: str
    component: str
    port: int
    env: dict[str, str]
    popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Cluster:
    """Start with ``start()``; stop with ``stop()`` (or use it as a context manager)."""

    database_urls: dict[str, str]
    bus_url: str
    gateways: int = 2
    consumers: int = 2
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="aidpost-")))
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)
    lb_port: int = 0
    # With a certificate (PEM: certificate and key), the edge serves HTTPS on ``tls_port``
    # and redirects ``http_port`` to it, as in production; ``lb_port`` stays plain HTTP for
    # the web component's calls (and tests).
    tls_certificate: Path | None = None
    tls_port: int = 0
    http_port: int = 0
    # Each component's whole environment (``aidpost secrets generate``'s files), instead of
    # this machine's; database and bus URLs then come from there too.
    component_env: dict[str, dict[str, str]] | None = None
    haproxy: subprocess.Popen[bytes] | None = None
    retired: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.lb_port}"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "AIDPOST_AUTH_DATABASE_URL": self.database_urls["auth"],
            "AIDPOST_ORGANIZER_DATABASE_URL": self.database_urls["organizer"],
            "AIDPOST_PARTICIPANT_DATABASE_URL": self.database_urls["participant"],
            "AIDPOST_MESSENGER_DATABASE_URL": self.database_urls["messenger"],
            "AIDPOST_MAILER_DATABASE_URL": self.database_urls["mailer"],
            "AIDPOST_STATUS_DATABASE_URL": self.database_urls["status"],
            "AIDPOST_BUS_URL": self.bus_url,
            "AIDPOST_RATE_LIMIT_STORAGE": self.bus_url,
            **self.extra_env,
        }

    def _spawn(self, process: Process) -> None:
        log = (self.workdir / f"{process.name}.log").open("ab")
        process.popen = subprocess.Popen(
            [
                sys.executable, "-m", "aidpost.cli", "serve", "--component", process.component,
                "--port", str(process.port),
            ],
            env={**process.env, "AIDPOST_DATA_DIR": str(self.workdir / process.name)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    def _wait_ready(self, process: Process, seconds: float = 60) -> None:
        def alive() -> None:
            assert process.popen is not None
            if process.popen.poll() is not None:
                raise RuntimeError(f"{process.name} exited; see {self.workdir}/{process.name}.log")

        wait_for_status(process.url, seconds, alive)

    def add(self, name: str, component: str, **env: str) -> Process:
        if self.component_env is not None:
            base = {"PATH": os.environ.get("PATH", ""), **self.component_env[component]}
            base["AIDPOST_HOST"] = "127.0.0.1"
        else:
            base = self._env()
        auth = next((p for p in self.processes if p.component == "auth"), None)
        if auth is not None and component != "auth":
            base["AIDPOST_AUTH_URL"] = auth.url
        participant = next((p for p in self.processes if p.component == "participant"), None)
        if participant is not None:
            base["AIDPOST_MESSENGER_PARTICIPANT_URL"] = participant.url
            base["AIDPOST_MAILER_PARTICIPANT_URL"] = participant.url
        if self.lb_port:  # the gateways serve the messenger's HTTP routes, behind HAProxy
            base["AIDPOST_MAILER_MESSENGER_URL"] = self.url
        process = Process(name, component, free_port(), {**base, **env})
        self.processes.append(process)
        self._spawn(process)
        self._wait_ready(process)
        return process

    def add_gateway(self) -> Process:
        n = sum(p.name.startswith("gateway") for p in self.processes)
        process = self.add(f"gateway{n + 1}", "messenger", AIDPOST_MESSENGER_ROLES="gateway")
        self.write_haproxy_config(reload=True)
        return process

    def start(self) -> Cluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.lb_port = free_port()
        if self.tls_certificate is not None:
            self.tls_port, self.http_port = free_port(), free_port()
        self.add("auth", "auth")
        self.add("organizer", "organizer")
        self.add("participant", "participant")
        for i in range(self.consumers):
            self.add(f"consumer{i + 1}", "messenger", AIDPOST_MESSENGER_ROLES="consumer")
        for i in range(self.gateways):
            self.add(f"gateway{i + 1}", "messenger", AIDPOST_MESSENGER_ROLES="gateway")
        self.add("mailer", "mailer")
        # The console and the app call the APIs as any client would: through HAProxy.
        self.add("web", "web", AIDPOST_WEB_API_URL=self.url)
        self.add(
            "status",
            "status",
            AIDPOST_STATUS_COMPONENTS_FILE=str(self.status_config()),
            AIDPOST_STATUS_PUBLIC_URL=self.url,
        )
        self.write_haproxy_config()
        self._wait_lb()
        return self

    def status_config(self, interval: int = 5) -> Path:
        """The status page's components: every process's own readiness check, PostgreSQL
        and Redis. (Processes added later are watched from the status process's next start.)"""
        from urllib.parse import urlsplit

        checks = {c: f"{c}_db" for c in ("auth", "organizer", "participant", "messenger")}
        checks["mailer"] = "mailer_db"
        checks["web"] = "bus"  # it owns no database; its readiness is its bus
        services = [
            {
                "id": p.name,
                "name": p.name.capitalize()
                .replace("Gateway", "Chat gateway ")
                .replace("Consumer", "Chat consumer "),
                "kind": "http",
                "target": p.url + "/status",
                "expect": {"check": checks[p.component]},
                "interval": interval,
                "timeout": 2,
                "failure_threshold": 2,
                "auto_incident_minutes": 5,
            }
            for p in self.processes
            if p.component in checks
        ]
        servers = []
        pg = urlsplit(next(iter(self.database_urls.values()), "postgresql://127.0.0.1:5432"))
        servers.append({"id": "postgresql", "name": "PostgreSQL", "kind": "tcp",
                        "target": f"{pg.hostname or '127.0.0.1'}:{pg.port or 5432}",
                        "interval": interval})  # fmt: skip
        redis = urlsplit(self.bus_url)
        servers.append({"id": "redis", "name": "Redis", "kind": "tcp",
                        "target": f"{redis.hostname or '127.0.0.1'}:{redis.port or 6379}",
                        "interval": interval})  # fmt: skip
        config = {
            "groups": [
                {"id": "services", "name": "Services", "components": services},
                {"id": "infrastructure", "name": "Infrastructure", "components": servers},
            ]
        }
        path = self.workdir / "status-components.json"
        path.write_text(json.dumps(config, indent=2))
        return path

    def _servers(self, prefix: str) -> list[Process]:
        return [p for p in self.processes if p.name.startswith(prefix) and p.popen is not None]

    def write_haproxy_config(self, reload: bool = False) -> None:
        from aidpost.deploy.haproxy import CHECK, Edge, render

        prefixes = {b: b for b in ("auth", "organizer", "participant", "mailer", "status", "web")}
        prefixes["gateways"] = "gateway"
        servers = {
            backend: [f"server {p.name} 127.0.0.1:{p.port} {CHECK}" for p in self._servers(prefix)]
            for backend, prefix in prefixes.items()
        }
        edge = Edge(public=f"127.0.0.1:{self.lb_port}")
        if self.tls_certificate is not None:
            edge = Edge(
                public=f"127.0.0.1:{self.http_port}",
                https=f"127.0.0.1:{self.tls_port}",
                certificate=str(self.tls_certificate),
                internal=f"127.0.0.1:{self.lb_port}",
            )
        config = render(edge, servers, global_lines=[f"pidfile {self.workdir}/haproxy.pid"])
        path = self.workdir / "haproxy.cfg"
        path.write_text(config)
        command = ["haproxy", "-f", str(path)]
        if reload and self.haproxy is not None:
            # The old process finishes what it holds (WebSockets: until hard-stop-after).
            self.retired.append(self.haproxy)
            self.haproxy = subprocess.Popen([*command, "-sf", str(self.haproxy.pid)])
        else:
            self.haproxy = subprocess.Popen(command)

    def _wait_lb(self) -> None:
        wait_for_status(self.url, 30)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` to a process and wait for it; returns its exit code."""
        process = next(p for p in self.processes if p.name == name)
        assert process.popen is not None
        process.popen.send_signal(sig)
        code = process.popen.wait(timeout=60)
        process.popen = None
        return code

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.popen is not None and process.popen.poll() is None:
                process.popen.send_signal(signal.SIGTERM)
        for process in self.processes:
            if process.popen is not None:
                try:
                    process.popen.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.popen.kill()
                    process.popen.wait()
        for proxy in [*self.retired, self.haproxy]:
            if proxy is not None and proxy.poll() is None:
                proxy.terminate()
                proxy.wait(timeout=10)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def postgres_databases(server_url: str, tag: str = "aidpost_cluster") -> dict[str, str]:
    """One database per component on ``server_url`` (created if missing)."""
    import asyncio

    import asyncpg

    components = ("auth", "organizer", "participant", "messenger", "mailer", "status")
    names = {c: f"{tag}_{c}" for c in components}

    async def create() -> None:
        conn = await asyncpg.connect(server_url + "/postgres")
        try:
            existing = {r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database")}
            for db in names.values():
                if db not in existing:
                    await conn.execute(f'CREATE DATABASE "{db}"')
        finally:
            await conn.close()

    asyncio.run(create())
    driver = server_url.replace("postgresql://", "postgresql+asyncpg://")
    return {c: f"{driver}/{db}" for c, db in names.items()}
