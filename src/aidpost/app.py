"""Build the ASGI app of one component, or of all of them in one process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI

from aidpost.core import logs
from aidpost.core.component import Component, ServesSockets
from aidpost.core.http import Check, SocketRoutes, build_http_app
from aidpost.core.settings import Settings
from aidpost.core.tokens import JwksKeySource
from aidpost.runtime import Runtime

COMPONENTS = ("auth", "organizer", "participant", "messenger", "mailer", "status", "web")


def _make(name: str, rt: Runtime) -> Component:
    if name == "auth":
        from aidpost.auth.component import AuthComponent

        return AuthComponent(rt)
    if name == "organizer":
        from aidpost.organizer.component import OrganizerComponent

        return OrganizerComponent(rt)
    if name == "participant":
        from aidpost.participant.component import ParticipantComponent

        return ParticipantComponent(rt)
    if name == "messenger":
        from aidpost.messenger.component import MessengerComponent

        return MessengerComponent(rt)
    if name == "mailer":
        from aidpost.mailer.component import MailerComponent

        return MailerComponent(rt)
    if name == "status":
        from aidpost.status.component import StatusComponent

        return StatusComponent(rt)
    if name == "web":
        from aidpost.web.component import WebComponent

        return WebComponent(rt)
    raise ValueError(f"unknown component {name!r}; choose from {', '.join(COMPONENTS)}")


def create_app(
    settings: Settings,
    components: Sequence[str] = COMPONENTS,
    *,
    runtime: Runtime | None = None,
) -> FastAPI:
    """The composition root: one runtime, the chosen components, one HTTP app."""
    settings.check_production(components)
    rt = runtime or Runtime(settings)
    parts = [_make(name, rt) for name in components]
    _connect_in_process(parts)
    for part in parts:
        if part.name == "status":
            part.served = tuple(components)  # type: ignore[attr-defined]
    apis = {"auth", "organizer"} <= set(components)
    if "web" in components and not apis and not settings.web.api_url:
        raise ValueError("AIDPOST_WEB_API_URL is required when the APIs run in another process")
    if "auth" not in components:
        if not settings.core.auth_url:
            raise ValueError("AIDPOST_AUTH_URL is required when auth runs in another process")
        rt.use_keys(
            JwksKeySource(settings.core.auth_url.rstrip("/") + "/auth-api/.well-known/jwks.json")
        )

    async def bus_probe() -> str:
        if not await rt.bus.ping():
            raise RuntimeError("bus unreachable")
        return "reachable"

    def checks() -> list[Check]:
        out = [Check("bus", bus_probe)]
        for part in parts:
            out.extend(part.checks())
        return out

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        started: list[Component] = []
        try:
            await rt.start()
            for part in parts:
                await part.start()
                started.append(part)
            yield
        finally:
            for part in reversed(started):
                await part.stop()
            await rt.stop()

    name = components[0] if len(components) == 1 else "all"
    app = build_http_app(name, settings.core, lifespan=lifespan, checks=checks)
    app.state.runtime = rt
    for part in parts:
        for key, value in part.state().items():
            setattr(app.state, key, value)
        for router in part.routers():
            app.include_router(router)
        if part.name == "web" and not settings.web.api_url:
            part.bind(app)  # type: ignore[attr-defined]
    sockets = {
        path: handler
        for part in parts
        if isinstance(part, ServesSockets)
        for path, handler in part.sockets().items()
    }
    if sockets:
        app.add_middleware(SocketRoutes, routes=sockets)  # outermost: added last
    return app


def _connect_in_process(parts: Sequence[Component]) -> None:
    """Components that run in the same process may call each other's services directly."""
    by_name = {part.name: part for part in parts}
    participant, messenger = by_name.get("participant"), by_name.get("messenger")
    mailer = by_name.get("mailer")
    for other in (messenger, mailer):
        if other is not None and participant is not None:
            other.participants = participant.service  # type: ignore[attr-defined]
    if mailer is not None and messenger is not None:
        mailer.messenger = messenger.service  # type: ignore[attr-defined]


def configure_logging(settings: Settings) -> None:
    logs.configure(settings.core.log_level)
