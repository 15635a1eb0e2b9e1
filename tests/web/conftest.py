"""A console user as a browser without JavaScript: an HTTP client that keeps cookies, reads
each page's CSRF token and posts its forms, on a fresh one-process aidpost (SQLite: the web
component owns no data; the APIs it calls are tested on PostgreSQL in their own suites).
The browser tests' fixtures come from ``tests/web/browser.py``."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from aidpost.app import create_app
from tests.conftest import Api, make_settings, sqlite_databases
from tests.web.browser import browser, chromium, patient_expect, shots  # noqa: F401 (fixtures)

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Visitor:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.csrf = ""

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        r = await self.client.get(path, **kw)
        found = CSRF.search(r.text)
        if found:
            self.csrf = found.group(1)
        return r

    async def post(self, path: str, form: dict[str, str], **kw: Any) -> httpx.Response:
        if not self.csrf:
            await self.get("/console/sign-in")
        return await self.client.post(path, data={"csrf": self.csrf, **form}, **kw)

    async def sign_in(self, email: str, password: str) -> httpx.Response:
        await self.get("/console/sign-in")
        r = await self.post("/console/sign-in", {"email": email, "password": password})
        assert r.status_code == 303, r.text
        return r

    def alerts(self, r: httpx.Response) -> list[str]:
        return re.findall(
            r'<div class="alert [a-z]+" role="(?:alert|status)">\s*(?:<ul>)?(.*?)</', r.text, re.S
        )


@pytest.fixture
async def web_app(tmp_path: Path) -> AsyncIterator[Any]:
    settings = make_settings(sqlite_databases(tmp_path), tmp_path)
    application = create_app(settings)
    async with LifespanManager(application, startup_timeout=60, shutdown_timeout=30):
        yield application


def client_for(app: Any, base: str = "http://aidpost.test") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 4321))
    return httpx.AsyncClient(transport=transport, base_url=base)


@pytest.fixture
async def visitor(web_app: Any) -> AsyncIterator[Visitor]:
    async with client_for(web_app) as client:
        yield Visitor(client)


@pytest.fixture
async def web_api(web_app: Any) -> AsyncIterator[Api]:
    """The APIs behind the pages, to build a world quickly and to check what the pages did."""
    async with client_for(web_app) as client:
        yield Api(client, web_app)
