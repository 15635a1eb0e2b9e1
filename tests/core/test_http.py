"""The HTTP boilerplate every component gets: operations routes, errors, limits, CORS, logs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import Request

from aidpost.app import create_app
from aidpost.core.settings import InsecureSettingsError, Settings
from tests.conftest import Api, Databases, make_settings, sqlite_databases


async def test_status_reports_every_check(api: Api) -> None:
    r = await api.client.get("/status")
    assert r.status_code == 200
    body = r.json()
    assert body["live"] is True and body["ready"] is True
    assert set(body["checks"]) == {
        "bus",
        "auth_db",
        "auth_organizer_db",
        "auth_participant_db",
        "organizer_db",
        "participant_db",
        "messenger_db",
        "mailer_db",
        "status_db",
    }
    assert all(c["ok"] for c in body["checks"].values())


async def test_status_is_503_when_migrations_are_not_at_head(api: Api) -> None:
    from sqlalchemy import text

    db = api.app.state.organizer.db
    async with db.engine.begin() as conn:
        await conn.execute(text("DELETE FROM alembic_version_organizer"))
    r = await api.client.get("/status")
    assert r.status_code == 503
    assert r.json()["ready"] is False and r.json()["live"] is True
    assert r.json()["checks"]["organizer_db"] == {"ok": False, "detail": "migrations not at head"}


async def test_version_and_metrics(api: Api) -> None:
    r = await api.client.get("/version")
    assert set(r.json()) == {"version", "commit", "buildTime"}
    await api.client.get("/organizer-api/profile")
    metrics = (await api.client.get("/metrics")).text
    assert "aidpost_http_requests_total" in metrics
    assert 'route="/organizer-api/profile"' in metrics and 'status="403"' in metrics


async def test_openapi_and_docs_are_served(api: Api) -> None:
    spec = (await api.client.get("/openapi.json")).json()
    ids = [op["operationId"] for path in spec["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids)), "operation ids must be unique"
    assert "organizerSignIn" in ids and "registerAgency" in ids
    assert (await api.client.get("/docs")).status_code == 200


async def test_unknown_route_in_esme_shape(api: Api) -> None:
    r = await api.client.get("/organizer-api/nope")
    assert r.status_code == 404
    assert r.json() == {
        "statusCode": 404,
        "message": "Cannot GET /organizer-api/nope",
        "error": "Not Found",
    }
    r = await api.client.put("/organizer-api/profile")
    assert r.status_code == 405 and r.json()["statusCode"] == 405


async def test_request_id_is_echoed_and_logged(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    from aidpost.core.logs import install_record_factory

    install_record_factory()  # as `aidpost serve` does
    caplog.set_level(logging.INFO, logger="aidpost.access")
    r = await api.client.get("/version", headers={"X-Request-ID": "trace-me-42"})
    assert r.headers["x-request-id"] == "trace-me-42"
    generated = (await api.client.get("/version")).headers["x-request-id"]
    assert len(generated) == 32
    again = (await api.client.get("/version")).headers["x-request-id"]
    assert again != generated
    from aidpost.core.logs import JsonFormatter

    lines = [json.loads(JsonFormatter().format(rec)) for rec in caplog.records]
    assert any(line.get("request_id") == "trace-me-42" and line["status"] == 200 for line in lines)


async def test_body_over_the_limit_is_413_before_parsing(api: Api) -> None:
    big = b'{"email":"' + b"a" * (1024 * 1024) + b'"}'
    r = await api.client.post(
        "/organizer-api/auth/sign-in", content=big, headers={"content-type": "application/json"}
    )
    assert r.status_code == 413 and r.json()["statusCode"] == 413

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(40):
            yield b"x" * 65536

    r = await api.client.post("/organizer-api/auth/sign-in", content=chunks())
    assert r.status_code == 413


async def test_cors_preflight_from_another_origin(api: Api) -> None:
    r = await api.client.options(
        "/organizer-api/auth/sign-in",
        headers={
            "Origin": "http://organizer-ui.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] in ("*", "http://organizer-ui.example")


async def test_rate_limit_per_address(databases: Databases, tmp_path: Path) -> None:
    settings = make_settings(databases, tmp_path, rate_limit="5/minute")
    app = create_app(settings)
    async with LifespanManager(app):
        for address, expected in (("198.51.100.1", [200] * 5 + [429]), ("198.51.100.2", [200])):
            transport = httpx.ASGITransport(app=app, client=(address, 1))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                codes = [
                    ((await client.get("/organizer-api/api/events/1")).status_code != 429 and 200)
                    or 429
                    for _ in expected
                ]
            assert codes == expected
        # operations routes are never limited: probes must always get through
        transport = httpx.ASGITransport(app=app, client=("198.51.100.1", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/status")).status_code == 200


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({}, "AIDPOST_AUTH_SUPERADMIN_PASSWORD is missing or a placeholder"),
        ({"AIDPOST_AUTH_SUPERADMIN_PASSWORD": "changethis"}, "AIDPOST_AUTH_SUPERADMIN_PASSWORD"),
        ({"AIDPOST_ORGANIZER_API_KEY": "short"}, "AIDPOST_ORGANIZER_API_KEY must be at least 16"),
        (
            {"AIDPOST_MESSENGER_API_KEY": "dev-api-key-not-for-production"},
            "AIDPOST_MESSENGER_API_KEY is missing or a placeholder",
        ),
        ({"AIDPOST_CORS_ORIGINS": '["*"]'}, "AIDPOST_CORS_ORIGINS"),
        ({"AIDPOST_WEB_SECRET": "dev-web-secret-not-for-production"}, "AIDPOST_WEB_SECRET"),
        ({"AIDPOST_WEB_SECRET": "short"}, "AIDPOST_WEB_SECRET must be at least 16"),
        ({"AIDPOST_WEB_SECURE_COOKIES": "never"}, "AIDPOST_WEB_SECURE_COOKIES"),
    ],
)
def test_production_refuses_weak_secrets(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], fragment: str
) -> None:
    strong = {
        "AIDPOST_ENV": "production",
        "AIDPOST_AUTH_SUPERADMIN_PASSWORD": "x7-Strong-Superadmin-Secret",
        "AIDPOST_ORGANIZER_API_KEY": "k" * 32,
        "AIDPOST_PARTICIPANT_API_KEY": "p" * 32,
        "AIDPOST_MESSENGER_API_KEY": "m" * 32,
        "AIDPOST_WEB_SECRET": "w" * 32,
        "AIDPOST_CORS_ORIGINS": '["https://organizer.example"]',
    }
    for key, value in {**strong, **env}.items():
        monkeypatch.setenv(key, value)
    if not env:
        monkeypatch.delenv("AIDPOST_AUTH_SUPERADMIN_PASSWORD")
    with pytest.raises(InsecureSettingsError, match=fragment):
        Settings().check_production()


def test_production_accepts_strong_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIDPOST_ENV", "production")
    monkeypatch.setenv("AIDPOST_AUTH_SUPERADMIN_PASSWORD", "x7-Strong-Superadmin-Secret")
    monkeypatch.setenv("AIDPOST_ORGANIZER_API_KEY", "k" * 32)
    monkeypatch.setenv("AIDPOST_PARTICIPANT_API_KEY", "p" * 32)
    monkeypatch.setenv("AIDPOST_MESSENGER_API_KEY", "m" * 32)
    monkeypatch.setenv("AIDPOST_WEB_SECRET", "w" * 32)
    monkeypatch.setenv("AIDPOST_CORS_ORIGINS", '["https://organizer.example"]')
    Settings().check_production()


def test_organizer_and_participant_never_share_a_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIDPOST_ORGANIZER_DATABASE_URL", "sqlite+aiosqlite:///same.db")
    monkeypatch.setenv("AIDPOST_PARTICIPANT_DATABASE_URL", "sqlite+aiosqlite:///same.db")
    with pytest.raises(ValueError, match="must not share"):
        Settings()


async def test_rate_limit_shared_through_redis(tmp_path: Path) -> None:
    """Replicas behind one load balancer share the limit when it lives in Redis."""
    from tests.conftest import REDIS_URL, require

    require("redis")
    import uuid

    dbs = sqlite_databases(tmp_path)
    address = f"198.51.100.{uuid.uuid4().int % 200 + 20}"
    apps = []
    for replica in ("a", "b"):
        (tmp_path / replica).mkdir()
        settings = make_settings(
            dbs, tmp_path / replica, rate_limit="4/minute", rate_limit_storage=REDIS_URL
        )
        apps.append(create_app(settings))
    codes = []
    async with LifespanManager(apps[0]), LifespanManager(apps[1]):
        for i in range(6):
            transport = httpx.ASGITransport(app=apps[i % 2], client=(address, 1))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                codes.append((await client.get("/organizer-api/api/events/1")).status_code)
    assert [c == 429 for c in codes] == [False] * 4 + [True] * 2


def test_production_checks_only_the_secrets_a_component_uses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process is given its own secrets and no others: the status page needs no API key."""
    monkeypatch.setenv("AIDPOST_ENV", "production")
    monkeypatch.setenv("AIDPOST_CORS_ORIGINS", '["https://organizer.example"]')
    monkeypatch.setenv("AIDPOST_BUS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("AIDPOST_RATE_LIMIT_STORAGE", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("AIDPOST_STATUS_DATABASE_URL", "postgresql+asyncpg://db/aidpost_status")
    Settings().check_production(["status"])
    with pytest.raises(InsecureSettingsError) as refused:
        Settings().check_production(["messenger"])
    assert "AIDPOST_MESSENGER_API_KEY" in str(refused.value)
    assert "AIDPOST_PARTICIPANT_API_KEY" in str(refused.value)  # it calls the participant API
    assert "AIDPOST_WEB_SECRET" not in str(refused.value)


def test_production_refuses_the_in_process_bus_for_one_component(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIDPOST_ENV", "production")
    monkeypatch.setenv("AIDPOST_CORS_ORIGINS", '["https://organizer.example"]')
    with pytest.raises(InsecureSettingsError, match="AIDPOST_BUS_URL=memory://"):
        Settings().check_production(["status"])


def test_production_refuses_what_one_component_cannot_share(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process of one component in production: its database unset (the SQLite default,
    a file no replica or restart shares) or the in-memory rate-limit counter is refused; the
    other components' databases are not its concern. All in one process, SQLite is allowed."""
    monkeypatch.setenv("AIDPOST_ENV", "production")
    monkeypatch.setenv("AIDPOST_CORS_ORIGINS", '["https://organizer.example"]')
    monkeypatch.setenv("AIDPOST_BUS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("AIDPOST_PARTICIPANT_API_KEY", "p" * 32)
    with pytest.raises(InsecureSettingsError) as refused:
        Settings().check_production(["participant"])
    message = str(refused.value)
    assert "AIDPOST_PARTICIPANT_DATABASE_URL is unset or SQLite" in message
    assert "AIDPOST_RATE_LIMIT_STORAGE=memory://" in message
    assert "AIDPOST_MESSENGER_DATABASE_URL" not in message
    monkeypatch.setenv("AIDPOST_RATE_LIMIT_STORAGE", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("AIDPOST_PARTICIPANT_DATABASE_URL", "sqlite+aiosqlite:///p.db")
    with pytest.raises(InsecureSettingsError, match="PARTICIPANT_DATABASE_URL is unset or SQL"):
        Settings().check_production(["participant"])
    monkeypatch.setenv("AIDPOST_PARTICIPANT_DATABASE_URL", "postgresql+asyncpg://db/aidpost_p")
    Settings().check_production(["participant"])
    # Every component in one process: SQLite and in-memory counters are its own to keep.
    for name in ("AIDPOST_RATE_LIMIT_STORAGE", "AIDPOST_PARTICIPANT_DATABASE_URL"):
        monkeypatch.delenv(name)
    for name, value in {
        "AIDPOST_BUS_URL": "memory://",
        "AIDPOST_AUTH_SUPERADMIN_PASSWORD": "x7-Strong-Superadmin-Secret",
        "AIDPOST_ORGANIZER_API_KEY": "k" * 32,
        "AIDPOST_MESSENGER_API_KEY": "m" * 32,
        "AIDPOST_WEB_SECRET": "w" * 32,
    }.items():
        monkeypatch.setenv(name, value)
    Settings().check_production()


async def test_the_edges_client_address_header_keys_the_rate_limit() -> None:
    """With AIDPOST_CLIENT_ADDRESS_HEADER the edge's header is the address: each viewer has
    their own limit; a malformed value is ignored; without it the connection's counts."""
    from aidpost.core.http import build_http_app
    from aidpost.core.settings import CoreSettings

    settings = CoreSettings(rate_limit="2/minute", client_address_header="X-Viewer-Address")
    app = build_http_app("test", settings)

    @app.get("/who")
    async def who(request: Request) -> dict[str, str]:
        assert request.client is not None
        return {"address": request.client.host}

    transport = httpx.ASGITransport(app=app, client=("10.0.0.9", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
        for viewer in ("198.51.100.7:443", "[2001:db8::1]:443"):
            answers = [
                await client.get("/who", headers={"X-Viewer-Address": viewer}) for _ in range(3)
            ]
            assert [a.status_code for a in answers] == [200, 200, 429]
        assert answers[0].json() == {"address": "2001:db8::1"}
        inside = await client.get("/who", headers={"X-Viewer-Address": "not an address"})
        assert inside.json() == {"address": "10.0.0.9"}
