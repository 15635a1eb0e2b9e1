"""What every component gives the app builder."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from fastapi import APIRouter, WebSocket

from aidpost.core.http import Check


class Component(Protocol):
    name: str

    def routers(self) -> Sequence[APIRouter]: ...

    def state(self) -> dict[str, Any]:
        """Objects put on ``app.state`` for this component's handlers."""
        ...

    def checks(self) -> Sequence[Check]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@runtime_checkable
class ServesSockets(Protocol):
    """A component with WebSocket endpoints, served ahead of the routing
    (``aidpost.core.http.SocketRoutes``)."""

    def sockets(self) -> Mapping[str, Callable[[WebSocket], Awaitable[None]]]: ...


def database_check(name: str, db: Any, history: str) -> Check:
    from sqlalchemy import text

    from aidpost.core.migrate import at_head

    migrated = False  # migrations only move forward at start: once at head, stay known

    async def probe() -> str:
        nonlocal migrated
        async with db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        if not migrated:
            # Reading the migration scripts is disk work: not on every health check.
            if not await at_head(db, history):
                raise RuntimeError("migrations not at head")
            migrated = True
        return "reachable, migrations at head"

    return Check(name, probe)
