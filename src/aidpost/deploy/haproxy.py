"""HAProxy's configuration for aidpost's edge: one route table for every shape.

``aidpost cluster`` renders it with loopback servers; ``envs/prod/haproxy.cfg`` (compose)
is rendered from :func:`compose_config` with servers found by Docker's DNS. Both route
auth's paths to auth, ``/messenger-api`` to the gateways (least connections, WebSockets
tunnelled), each API prefix to its component and the rest to the organizer; both take a
server out after three failed ``GET /status`` checks, one a second. A check may take up to
3 s: a gateway whose event loop is saturated answers late but is alive, and taking every
busy gateway out of rotation would turn a load peak into 503s for everyone (seen in the
ESME scenario at ~1,900 chats). A process that is gone refuses the check at once and is
out within about 3 s; requests meant for it are redispatched. One that is frozen but whose
socket still accepts connections takes three checks of 1 + 3 s, about 12 s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

AUTH_PATHS = (
    "/auth-api/",
    "/organizer-api/auth/",
    "/participant-api/auth/",
    "/organizer-api/profile/change-password",
    "/participant-api/profile/change-password",
)
# (backend, path prefixes), first match wins; everything else goes to the organizer.
ROUTES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("auth", AUTH_PATHS),
    ("gateways", ("/messenger-api",)),
    ("participant", ("/participant-api",)),
    ("mailer", ("/mailer-api",)),
    ("status", ("/statuspage",)),
    ("web", ("/console", "/app", "/web/")),
)
DEFAULT_BACKEND = "organizer"
BACKENDS = ("auth", "organizer", "participant", "mailer", "status", "web", "gateways")
CHECK = "check inter 1s fall 3 rise 1"
FD_HARD_LIMIT = 262_144  # descriptors an edge without a maxconn sizes itself for, at most


@dataclass(frozen=True)
class Edge:
    """Where the edge listens. ``public`` is plain HTTP (or, with ``certificate``, HTTP that
    redirects to ``https``); ``internal`` is plain HTTP for the web component's API calls."""

    public: str
    https: str | None = None
    certificate: str | None = None
    internal: str | None = None


def render(
    edge: Edge,
    servers: Mapping[str, Sequence[str]],
    *,
    global_lines: Sequence[str] = (),
    resolvers: str | None = None,
    maxconn: int | None = None,
) -> str:
    """The whole configuration; ``servers`` maps each backend to its ``server`` lines.

    ``maxconn``: the connections HAProxy holds at once (a WebSocket is one, with two file
    descriptors). HAProxy refuses to start if its file-descriptor limit is below what that
    needs; None leaves it to HAProxy, which derives it from that limit, up to
    ``FD_HARD_LIMIT`` (9,986 connections under a limit of 20,000)."""
    logs = any(g.startswith("log ") for g in global_lines)
    # Without a maxconn, HAProxy 2.6 sizes itself from the hard descriptor limit, which can
    # be a million or more: capped, as HAProxy 3.0 does by default.
    limit = f"maxconn {maxconn}" if maxconn else f"fd-hard-limit {FD_HARD_LIMIT}"
    lines = ["global", f"    {limit}"]
    lines += [f"    {g}" for g in global_lines]
    lines += [
        "    # a reloaded (old) process drops its WebSocket tunnels after this; clients reconnect",
        "    hard-stop-after 10s",
    ]
    if edge.certificate:
        lines += ["    ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets"]
    if resolvers:
        lines += ["", resolvers.rstrip()]
    lines += [
        "",
        "defaults",
        "    mode http",
        *(["    log global", "    option httplog"] if logs else []),
        "    timeout connect 2s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    timeout tunnel 1h",
        "    timeout http-request 10s",
        "    timeout check 3s",
        "    option redispatch",
        "    retries 2",
    ]
    routes = []
    for backend, paths in ROUTES:
        routes.append(f"    acl is_{backend} path_beg {' '.join(paths)}")
    routes += [f"    use_backend {backend} if is_{backend}" for backend, _ in ROUTES]
    routes.append(f"    default_backend {DEFAULT_BACKEND}")
    lines += ["", "frontend public", f"    bind {edge.public}"]
    if edge.https and edge.certificate:
        lines += [
            f"    bind {edge.https} ssl crt {edge.certificate} alpn h2,http/1.1",
            "    http-request redirect scheme https code 301 unless { ssl_fc }",
            '    http-response set-header Strict-Transport-Security "max-age=31536000"',
        ]
    lines += [
        # What a client says it is counts for nothing here: its address and scheme are
        # what this edge saw (rate limits and sign-in throttles key on the address).
        "    http-request set-header X-Forwarded-For %[src]",
        "    http-request set-header X-Forwarded-Proto https if { ssl_fc }",
        "    http-request set-header X-Forwarded-Proto http unless { ssl_fc }",
        *routes,
    ]
    if edge.internal:
        # Only the web component calls here, forwarding the browser's address: kept.
        lines += ["", "frontend internal", f"    bind {edge.internal}", "    option forwardfor"]
        lines += routes
    for backend in BACKENDS:
        balance = "leastconn" if backend == "gateways" else "roundrobin"
        lines += [
            "",
            f"backend {backend}",
            f"    balance {balance}",
            "    option httpchk GET /status",
            "    http-check expect status 200",
            *(f"    {server}" for server in servers.get(backend, ())),
        ]
    return "\n".join(lines) + "\n"


# Compose: each backend is a service of envs/prod/compose.yaml, its replicas found by
# Docker's DNS (up to this many per service).
COMPOSE_SERVICES = {
    "auth": "auth",
    "organizer": "organizer",
    "participant": "participant",
    "mailer": "mailer",
    "status": "status",
    "web": "web",
    "gateways": "messenger-gateway",
}
COMPOSE_SLOTS = 10
# The compose edge's connections at once: every participant's and staff member's phone or
# browser holds one WebSocket for its session. The compose file gives HAProxy the file
# descriptors this needs (``ulimits``: two per connection and some to spare).
COMPOSE_MAXCONN = 100_000


def compose_config() -> str:
    """``envs/prod/haproxy.cfg``: TLS on 443 (HTTP on 80 redirects), plain 8080 inside."""
    servers = {
        backend: [
            f"server-template {service}- {COMPOSE_SLOTS} {service}:8000 {CHECK} "
            "resolvers docker init-addr none"
        ]
        for backend, service in COMPOSE_SERVICES.items()
    }
    return render(
        Edge(
            public=":80",
            https=":443",
            certificate="/usr/local/etc/haproxy/certs/aidpost.pem",
            internal=":8080",
        ),
        servers,
        # Starts as root to read the key and bind 80/443, then drops to haproxy's user.
        global_lines=["user haproxy", "group haproxy", "log stdout format raw local0"],
        resolvers="resolvers docker\n    nameserver dns 127.0.0.11:53\n    hold valid 5s",
        maxconn=COMPOSE_MAXCONN,
    )
