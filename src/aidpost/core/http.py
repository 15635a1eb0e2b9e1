"""HTTP boilerplate shared by every component.

``build_http_app`` returns a FastAPI app that already has: ESME's error shape for every
error (including validation and unknown routes), request ids and JSON access logs,
Prometheus metrics, a body-size limit, a per-address rate limit, CORS, and the operational
routes ``/status``, ``/version``, ``/metrics``, ``/docs`` and ``/openapi.json``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from limits import parse
from limits.aio.storage import Storage as AsyncStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

import aidpost
from aidpost.core import errors, logs
from aidpost.core.settings import CoreSettings

access_log = logging.getLogger("aidpost.access")
# Paths that carry a secret (a link's token) in their last segment.
_SECRET_PATHS = re.compile(r"^(/statuspage/(?:confirm|unsubscribe)/)[^/]+$")


def _redacted(path: str) -> str:
    return _SECRET_PATHS.sub(r"\1[hidden]", path)


@dataclass(frozen=True)
class Check:
    """A readiness check: returns a detail string, raises when not ready."""

    name: str
    probe: Callable[[], Awaitable[str]]


class ObservabilityMiddleware:
    """Request id, access log line and metrics for every HTTP request."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry, component: str) -> None:
        self.app = app
        self.component = component
        self.requests = Counter(
            "aidpost_http_requests_total",
            "HTTP requests",
            ["component", "method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "aidpost_http_request_duration_seconds",
            "HTTP request duration",
            ["component", "method", "route"],
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        raw = headers.get(b"x-request-id", b"")
        rid = raw.decode("latin-1")[:64] if raw else logs.new_request_id()
        token = logs.request_id.set(rid)
        status = 500
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.requests.labels(self.component, method, path, str(status)).inc()
            self.latency.labels(self.component, method, path).observe(elapsed)
            access_log.info(
                "request",
                extra={
                    "method": method,
                    "path": _redacted(scope.get("path", "")),
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            logs.request_id.reset(token)


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413 before a handler reads them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers") or []:
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = True
                if too_big:
                    await self._refuse(scope, receive, send)
                    return
        received = 0
        refused = False
        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # we already answered 413; drop whatever the app says after
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        async def limited_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes and not refused:
                    if not started:
                        await self._refuse(scope, receive, send)
                    refused = True
                    # Tell the app the client is gone, so it stops reading and answering.
                    return {"type": "http.disconnect"}
            return message

        await self.app(scope, limited_receive, guarded_send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = errors.error_response(413, f"request body over {self.max_bytes} bytes")
        await response(scope, receive, send)


class ClientAddressMiddleware:
    """The client's address from a header the edge writes and clients cannot (CloudFront's
    viewer address, say: ``AIDPOST_CLIENT_ADDRESS_HEADER``), for the rate limits and the
    sign-in throttles. Without the header (a call from inside, such as the web
    component's), the address stays what the proxy headers gave."""

    def __init__(self, app: ASGIApp, header: str) -> None:
        self.app = app
        self.header = header.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            for name, value in scope["headers"]:
                if name == self.header:
                    address = _address(value.decode("latin-1"))
                    if address:
                        scope["client"] = (address, 0)
                    break
        await self.app(scope, receive, send)


def _address(value: str) -> str | None:
    """An IP address, from "ip", "ip:port" or "[v6]:port"; None if it is none."""
    import ipaddress

    text = value.strip()
    candidates = [text]
    if text.startswith("[") and "]" in text:
        candidates = [text[1 : text.index("]")]]
    elif text.count(":") == 1:
        candidates.append(text.split(":", 1)[0])
    for candidate in candidates:
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    return None


class SocketRoutes:
    """WebSocket endpoints answered ahead of the routing and the middleware.

    A chat socket lives for hours, and while it idles every frame of the call chain that
    reached its handler stays in memory: FastAPI's routing, its exit stacks and exception
    wrappers, CORS and the HTTP middleware (none of which does anything for a WebSocket)
    cost about 12 KiB per idle socket (docs/performance.md, idle connections). The
    handlers here get the socket straight from the server, behind only this one frame.
    """

    def __init__(
        self, app: ASGIApp, routes: Mapping[str, Callable[[WebSocket], Awaitable[None]]]
    ) -> None:
        self.app = app
        self.routes = dict(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            handler = self.routes.get(scope["path"])
            if handler is not None:
                await handler(WebSocket(scope, receive, send))
                return
        await self.app(scope, receive, send)


class RateLimitMiddleware:
    """A moving-window limit per client address (memory or Redis storage)."""

    EXEMPT = ("/status", "/version", "/metrics")

    def __init__(self, app: ASGIApp, limit: str, storage_url: str) -> None:
        self.app = app
        self.limit = parse(limit)
        self.limiter = MovingWindowRateLimiter(async_storage(storage_url))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").endswith(self.EXEMPT):
            await self.app(scope, receive, send)
            return
        client = scope.get("client") or ("unknown", 0)
        if not await self.limiter.hit(self.limit, "http", client[0]):
            response = errors.error_response(429, "Too many requests, try again later")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def async_storage(url: str) -> AsyncStorage:
    """A ``limits`` async storage for ``memory://`` or ``redis://`` URLs."""
    options = {"implementation": "redispy"} if "redis" in url.split("://", 1)[0] else {}
    storage = storage_from_string(_async_storage(url), **options)
    assert isinstance(storage, AsyncStorage)
    return storage


def _async_storage(url: str) -> str:
    if url.startswith("memory://"):
        return "async+memory://"
    if url.startswith(("redis://", "rediss://")):  # rediss: TLS (ElastiCache in transit)
        return "async+" + url
    return url


def build_http_app(
    component: str,
    settings: CoreSettings,
    *,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    checks: Callable[[], Sequence[Check]] = lambda: (),
    description: str = "",
) -> FastAPI:
    app = FastAPI(
        title=f"aidpost {component}",
        version=aidpost.__version__,
        description=description,
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
    )
    registry = CollectorRegistry()
    app.add_exception_handler(errors.ApiError, errors.api_error_handler)
    app.add_exception_handler(StarletteHTTPException, errors.http_error_handler)
    app.add_exception_handler(RequestValidationError, errors.validation_error_handler)
    app.add_exception_handler(ClientDisconnect, errors.client_gone_handler)
    app.add_exception_handler(Exception, errors.unhandled_error_handler)

    app.add_middleware(
        RateLimitMiddleware, limit=settings.rate_limit, storage_url=settings.rate_limit_storage
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.client_address_header:
        app.add_middleware(ClientAddressMiddleware, header=settings.client_address_header)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_credentials="*" not in settings.cors_origins,
        allow_methods=["*"],
        allow_headers=["*"],
        max_age=600,
    )
    app.add_middleware(ObservabilityMiddleware, registry=registry, component=component)

    @app.get("/status", tags=["operations"], operation_id="status")
    async def status() -> JSONResponse:
        """Liveness (the process answers) and readiness (every dependency is usable)."""
        detail: dict[str, Any] = {}
        ready = True
        for check in checks():
            try:
                detail[check.name] = {"ok": True, "detail": await check.probe()}
            except Exception as exc:
                ready = False
                detail[check.name] = {"ok": False, "detail": str(exc) or type(exc).__name__}
        body = {"component": component, "live": True, "ready": ready, "checks": detail}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/version", tags=["operations"], operation_id="version")
    async def version() -> dict[str, str]:
        return {
            "version": aidpost.__version__,
            "commit": settings.git_commit,
            "buildTime": settings.build_time,
        }

    @app.get("/metrics", tags=["operations"], operation_id="metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.state.metrics_registry = registry
    return app
