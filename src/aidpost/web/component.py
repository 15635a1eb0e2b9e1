"""The web component: the organizer console and the participant app. It owns no data; its
pages call the other components' APIs (in process, or at ``AIDPOST_WEB_API_URL``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter
from starlette.types import ASGIApp

from aidpost.core.http import Check
from aidpost.runtime import Runtime
from aidpost.web import admin, console, participant, resources, static
from aidpost.web.pages import Web
from aidpost.web.security import Guard
from aidpost.web.upstream import Upstream

_PLATFORM_PAGES = admin  # imported for its console routes (emails, status page)
for _resource in resources.RESOURCES:
    resources.register(console.router, _resource)
for _router, _missing in ((console.router, console.not_found),
                          (participant.router, participant.not_found)):  # fmt: skip
    _router.add_api_route(
        "/{rest:path}",
        _missing,
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        operation_id=f"{_router.prefix.strip('/')}NotFound",
    )


class WebComponent:
    name = "web"

    def __init__(self, rt: Runtime) -> None:
        s = rt.settings.web
        ws_url = s.messenger_ws_url
        ws_origin = None
        if ws_url:
            parts = urlsplit(ws_url)
            ws_origin = f"{parts.scheme}://{parts.netloc}"
        self.upstream = Upstream(s.api_url)
        self.web = Web(
            upstream=self.upstream,
            guard=Guard(s.secret, s.secure_cookies),
            ws_origin=ws_origin,
            ws_url=ws_url,
        )

    def bind(self, app: ASGIApp) -> None:
        self.upstream.bind(app)

    def routers(self) -> Sequence[APIRouter]:
        return (static.router, console.router, participant.router)

    def state(self) -> dict[str, Any]:
        return {"web": self.web}

    def checks(self) -> Sequence[Check]:
        return []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        await self.upstream.close()
