"""Test worlds: a fresh aidpost per test on SQLite files or on real PostgreSQL databases.

Backends: every test that takes ``app``/``api`` runs on SQLite; with PostgreSQL reachable
(``AIDPOST_TEST_POSTGRES``, default ``postgresql://postgres@127.0.0.1:5432``) it runs on
PostgreSQL too. On CI (``CI=true``) an unreachable PostgreSQL or Redis fails the run
instead of skipping.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from aidpost.app import create_app
from aidpost.core.settings import Settings

PG_URL = os.environ.get("AIDPOST_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("AIDPOST_TEST_REDIS", "redis://127.0.0.1:6379/15")
ON_CI = os.environ.get("CI", "").lower() == "true"
SUPERADMIN = ("superadmin@test.aidpost.example", "superadmin-password-for-tests")
PASSWORD = "correct-horse-battery-staple"  # 28 characters, ESME wants 16 to 128


def _reachable(kind: str) -> bool:
    import socket

    host, port = ("127.0.0.1", 5432) if kind == "postgres" else ("127.0.0.1", 6379)
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require(kind: str) -> None:
    """Skip without the server, except on CI where its absence is a failure."""
    if not _reachable(kind):
        if ON_CI:
            pytest.fail(f"{kind} is not reachable on CI; tests that need it must run")
        pytest.skip(f"{kind} not reachable")


def wait_for_redis(url: str, seconds: float = 5.0) -> None:
    """Until a Redis just started answers at ``url``."""
    import time

    import redis

    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + seconds
    try:
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        client.close()


def drop_redis_keys(prefix: str) -> None:
    """Remove what a test wrote under its own Redis key prefix."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_URL + "/postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


COMPONENT_DATABASES = ("auth", "organizer", "participant", "messenger", "mailer", "status")


def sqlite_databases(folder: Path) -> Databases:
    """A SQLite file per component under ``folder``."""
    return Databases(
        "sqlite", {n: f"sqlite+aiosqlite:///{folder / n}.db" for n in COMPONENT_DATABASES}
    )


def _pg_url(db: str) -> str:
    return PG_URL.replace("postgresql://", "postgresql+asyncpg://") + "/" + db


# Migrated once per test run: each test's PostgreSQL databases are copies of these (a copy
# takes a tenth of the time the migrations take), dropped when the run ends.
_PG_TEMPLATES: dict[str, str] = {}


async def _pg_templates() -> dict[str, str]:
    if not _PG_TEMPLATES:
        import tempfile

        from aidpost.app import COMPONENTS
        from aidpost.core.migrate import migrate

        tag = uuid.uuid4().hex[:10]
        names = {name: f"aidpost_template_{tag}_{name}" for name in COMPONENT_DATABASES}
        for db in names.values():
            await _pg_admin(f'CREATE DATABASE "{db}"')
        _PG_TEMPLATES.update(names)
        urls = {name: _pg_url(db) for name, db in names.items()}
        with tempfile.TemporaryDirectory() as folder:
            await migrate(make_settings(Databases("postgres", urls), Path(folder)), COMPONENTS)
    return _PG_TEMPLATES


class _Dropper:
    """Drops the tests' PostgreSQL databases in a thread of its own, while the next tests
    run (a drop takes longer than most tests); the run waits for it at the end."""

    def __init__(self) -> None:
        import queue

        self.queue: queue.Queue[str | None] = queue.Queue()
        self.thread: threading.Thread | None = None

    def drop(self, db: str) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="pg-dropper", daemon=True)
            self.thread.start()
        self.queue.put(db)

    def _run(self) -> None:
        import asyncio

        async def work() -> None:
            while (db := await asyncio.to_thread(self.queue.get)) is not None:
                await _pg_admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

        asyncio.run(work())

    def finish(self) -> None:
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join(timeout=600)
            self.thread = None


_DROPPER = _Dropper()


def pytest_sessionfinish(session: pytest.Session) -> None:
    for db in _PG_TEMPLATES.values():
        _DROPPER.drop(db)
    _DROPPER.finish()


@dataclass
class Databases:
    backend: str
    urls: dict[str, str] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)


async def fresh_databases(backend: str, tmp_path: Path) -> AsyncIterator[Databases]:
    dbs = Databases(backend)
    if backend == "sqlite":
        for name in COMPONENT_DATABASES:
            dbs.urls[name] = f"sqlite+aiosqlite:///{tmp_path / (name + '.db')}"
    else:
        require("postgres")
        templates = await _pg_templates()
        tag = uuid.uuid4().hex[:10]
        for name in COMPONENT_DATABASES:
            db = f"aidpost_test_{tag}_{name}"
            await _pg_admin(f'CREATE DATABASE "{db}" TEMPLATE "{templates[name]}"')
            dbs.created.append(db)
            dbs.urls[name] = _pg_url(db)
    yield dbs
    for db in dbs.created:
        _DROPPER.drop(db)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def databases(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Databases]:
    """Fresh databases for every component, on SQLite, then on PostgreSQL."""
    async for dbs in fresh_databases(request.param, tmp_path):
        yield dbs


@pytest.fixture
async def postgres(tmp_path: Path) -> AsyncIterator[Databases]:
    """Fresh PostgreSQL databases for every component (the scaled-out shapes)."""
    async for dbs in fresh_databases("postgres", tmp_path):
        yield dbs


def make_settings(dbs: Databases, tmp_path: Path, **core: Any) -> Settings:
    env = {
        "AIDPOST_ENV": "test",
        "AIDPOST_DATA_DIR": str(tmp_path),
        "AIDPOST_AUTH_DATABASE_URL": dbs.urls["auth"],
        "AIDPOST_ORGANIZER_DATABASE_URL": dbs.urls["organizer"],
        "AIDPOST_PARTICIPANT_DATABASE_URL": dbs.urls["participant"],
        "AIDPOST_MESSENGER_DATABASE_URL": dbs.urls["messenger"],
        "AIDPOST_MAILER_DATABASE_URL": dbs.urls["mailer"],
        "AIDPOST_STATUS_DATABASE_URL": dbs.urls["status"],
        # Tests drive the prober themselves (or ask for it).
        "AIDPOST_STATUS_PROBER": "false",
        "AIDPOST_MAILER_TRANSPORT_URL": "memory:",
        "AIDPOST_AUTH_SUPERADMIN_EMAIL": SUPERADMIN[0],
        "AIDPOST_AUTH_SUPERADMIN_PASSWORD": SUPERADMIN[1],
        # Fast hashing in tests; production keeps OWASP's argon2id parameters.
        "AIDPOST_AUTH_ARGON2_MEMORY_KIB": "1024",
        "AIDPOST_AUTH_ARGON2_TIME_COST": "1",
        "AIDPOST_RATE_LIMIT": "100000/minute",
        "AIDPOST_ORGANIZER_API_KEY": "organizer-api-key-for-tests",
    }
    env.update({f"AIDPOST_{k.upper()}": str(v) for k, v in core.items()})
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return Settings()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class Api:
    """An HTTP client on the app plus shortcuts to build a world (agencies, staff, events)."""

    def __init__(self, client: httpx.AsyncClient, app: Any) -> None:
        self.client = client
        self.app = app
        self._n = 0

    async def request(
        self, method: str, path: str, token: str | None = None, **kw: Any
    ) -> httpx.Response:
        headers = kw.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return await self.client.request(method, "/organizer-api" + path, headers=headers, **kw)

    def unique(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}-{self._n}-{uuid.uuid4().hex[:6]}"

    async def sign_in(self, email: str, password: str = PASSWORD) -> str:
        r = await self.request("POST", "/auth/sign-in", json={"email": email, "password": password})
        assert r.status_code == 200, r.text
        token: str = r.json()["token"]
        return token

    async def superadmin(self) -> str:
        return await self.sign_in(*SUPERADMIN)

    def register_body(self) -> dict[str, Any]:
        """A valid ``POST /agency`` body with a new agency name and owner email."""
        return {
            "agency": {
                "name": self.unique("Agency"),
                "address": "Main Street 1, Warsaw",
                "website": "https://agency.example.com",
            },
            "owner": {
                "email": self.unique("owner") + "@example.com",
                "password": PASSWORD,
                "confirmPassword": PASSWORD,
                "firstName": "Olga",
                "lastName": "Owner",
                "phoneNumber": "+48123456789",
            },
        }

    def contact_body(self, event_id: int) -> dict[str, Any]:
        return {
            "firstName": "Carl",
            "lastName": "Contact",
            "email": self.unique("contact") + "@example.com",
            "phoneNumber": "+48123456789",
            "additionalNotes": "",
            "eventId": event_id,
        }

    async def register_agency(self, approved: bool = True) -> tuple[int, str, str | None]:
        """Register an agency; return (agency id, owner email, owner token if approved)."""
        body = self.register_body()
        owner: str = body["owner"]["email"]
        r = await self.request("POST", "/agency", json=body)
        assert r.status_code == 201, r.text
        agency_id: int = r.json()["id"]
        if not approved:
            return agency_id, owner, None
        admin = await self.superadmin()
        r = await self.request(
            "PATCH", f"/admin/agencies/{agency_id}/verify", admin, json={"approved": True}
        )
        assert r.status_code == 200, r.text
        return agency_id, owner, await self.sign_in(owner)

    def user_body(self, role: int, email: str | None = None) -> dict[str, Any]:
        return {
            "email": email or self.unique("user") + "@example.com",
            "password": PASSWORD,
            "confirmPassword": PASSWORD,
            "firstName": "Ula",
            "lastName": "User",
            "phoneNumber": "+48123456789",
            "role": role,
        }

    async def add_user(self, owner_token: str, role: int) -> tuple[int, str]:
        """An agency user of ``role`` created by the owner; returns (id, token)."""
        body = self.user_body(role)
        r = await self.request("POST", "/agency/users", owner_token, json=body)
        assert r.status_code == 201, r.text
        return r.json()["id"], await self.sign_in(body["email"])

    async def add_admin(self) -> tuple[int, str]:
        body = self.user_body(1)
        r = await self.request("POST", "/admin/users", await self.superadmin(), json=body)
        assert r.status_code == 201, r.text
        return r.json()["id"], await self.sign_in(body["email"])

    def event_body(self, **overrides: Any) -> dict[str, Any]:
        body = {
            "name": self.unique("Festival"),
            "description": "Open-air music festival",
            "address": "Park 2, Warsaw",
            "lat": 52.23,
            "lng": 21.01,
            "timeStart": "2026-07-01T12:00:00.000Z",
            "timeEnd": "2026-07-03T23:00:00.000Z",
        }
        body.update(overrides)
        return body

    async def add_event(self, token: str, **overrides: Any) -> dict[str, Any]:
        r = await self.request("POST", "/agency/events", token, json=self.event_body(**overrides))
        assert r.status_code == 201, r.text
        result: dict[str, Any] = r.json()
        return result


@pytest.fixture
def settings(databases: Databases, tmp_path: Path) -> Settings:
    return make_settings(databases, tmp_path)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Any]:
    application = create_app(settings)
    async with LifespanManager(application, startup_timeout=60, shutdown_timeout=30):
        yield application


@pytest.fixture
async def api(app: Any) -> AsyncIterator[Api]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://aidpost.test") as client:
        yield Api(client, app)
