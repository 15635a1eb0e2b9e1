"""Every status route with a body, fed malformed, mis-shaped, deeply nested, oversized and
unknown-field bodies: a clear 400 (or 413) in ESME's error shape, never a 500; and every
route with a path id, fed ids no database can hold: a 404, never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api
from tests.status.test_api import admin_token, status_admin

JSON = {"content-type": "application/json"}
# (method, path, a valid body) of every route that takes a JSON body.
BODY_ROUTES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("POST", "/statuspage-api/components",
     {"id": "site", "name": "Site", "kind": "http", "target": "https://example.org/"}),
    ("PATCH", "/statuspage-api/components/bus", {"manual_status": None}),
    ("POST", "/statuspage-api/groups", {"id": "extra", "name": "Extra"}),
    ("POST", "/statuspage-api/incidents", {"name": "n", "body": "b"}),
    ("POST", "/statuspage-api/incidents/{incident}/updates", {"body": "b"}),
    ("POST", "/statuspage-api/maintenances",
     {"name": "m", "body": "b", "scheduled_for": "2030-01-01T00:00:00Z",
      "scheduled_until": "2030-01-01T01:00:00Z"}),
    ("PUT", "/statuspage-api/incident-templates/t1", {"name": "n", "body": "b"}),
    ("POST", "/statuspage-api/webhooks", {"url": "https://hooks.example/x"}),
    ("POST", "/statuspage/api/v2/subscribers", {"email": "someone@example.org"}),
)  # fmt: skip
ID_ROUTES = (
    ("GET", "/statuspage-api/components/{}"),
    ("PATCH", "/statuspage-api/components/{}"),
    ("DELETE", "/statuspage-api/components/{}"),
    ("GET", "/statuspage-api/components/{}/results"),
    ("DELETE", "/statuspage-api/groups/{}"),
    ("GET", "/statuspage-api/incidents/{}"),
    ("DELETE", "/statuspage-api/incidents/{}"),
    ("POST", "/statuspage-api/incidents/{}/updates"),
    ("PUT", "/statuspage-api/incident-templates/{}"),
    ("DELETE", "/statuspage-api/incident-templates/{}"),
    ("DELETE", "/statuspage-api/subscribers/{}"),
    ("DELETE", "/statuspage-api/webhooks/{}"),
    ("GET", "/statuspage-api/webhooks/{}/deliveries"),
)
BAD_IDS = ("%00", "%C5%BC", "x" * 300, "a%2Fb", "..", "1%20OR%201=1", "%F0%9F%98%80")


def _shape(path: str) -> str:
    return path.replace("{incident}", "{incident_id}")


def test_every_route_with_a_body_is_covered(app: Any) -> None:
    ours = {
        (m, p.split("/t1")[0] + "/{template_id}" if "/t1" in p else p) for m, p, _ in BODY_ROUTES
    }
    ours = {
        (m, _shape(p).replace("/components/bus", "/components/{component_id}")) for m, p in ours
    }
    with_body = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith(("/statuspage-api/", "/statuspage/"))
        for method, operation in operations.items()
        if "requestBody" in operation
    }
    assert with_body == ours


def test_every_route_with_an_id_is_covered(app: Any) -> None:
    ours = {(m, p) for m, p in ID_ROUTES}
    with_id = set()
    for path, operations in app.openapi()["paths"].items():
        if path.startswith("/statuspage-api/") and "{" in path:
            generic = path.split("{")[0] + "{}" + path.split("}", 1)[1]
            with_id |= {(method.upper(), generic) for method in operations}
    assert with_id == ours


async def _error(r: Any, status: int, what: str) -> None:
    assert r.status_code == status, (what, r.status_code, r.text[:300])
    body = r.json()
    assert body["statusCode"] == status and body["message"] and body["error"], what


@pytest.mark.parametrize(
    ("method", "path", "valid"), BODY_ROUTES, ids=[f"{m} {p}" for m, p, _ in BODY_ROUTES]
)
async def test_bodies(api: Api, method: str, path: str, valid: dict[str, Any]) -> None:
    token = await admin_token(api)
    if "{incident}" in path:
        r = await status_admin(api, "POST", "/incidents", token, json={"name": "n", "body": "b"})
        path = path.replace("{incident}", r.json()["id"])
    headers = {"Authorization": f"Bearer {token}"}

    async def send(**kw: Any) -> Any:
        extra = kw.pop("headers", {})
        return await api.client.request(method, path, headers={**headers, **extra}, **kw)

    for raw in (b'{"a":', b"{", b"{'a': 1}", b'{"a": 1,}', b"nul", b'{"a": "\\x"}', b"\xff\xfe"):
        await _error(await send(content=raw, headers=JSON), 400, f"malformed {raw!r}")
    deep = b"[" * 100_000 + b"]" * 100_000
    await _error(await send(content=deep, headers=JSON), 400, "deeply nested")
    for value in ([], [valid], "text", 12345, True, None):
        await _error(await send(json=value), 400, f"body {value!r}")
    await _error(await send(json={**valid, "surprise": 1}), 400, "unknown field")
    for name in valid:
        if valid[name] is None:
            continue
        for wrong in ({"x": 1}, [1], 10**40, "\x00", "x" * 20_000):
            if (
                isinstance(valid[name], str)
                and isinstance(wrong, str)
                and name == "body"
                and len(wrong) < 10_001
            ):
                continue
            r = await send(json={**valid, name: wrong})
            assert r.status_code in (400, 404), (name, wrong, r.text[:200])
    big = b'{"name": "' + b"x" * 1_100_000 + b'"}'
    await _error(await send(content=big, headers=JSON), 413, "over 1 MiB")
    r = await send(json=valid)
    assert r.status_code < 300, ("the valid body", r.text[:300])


async def test_ids_no_database_can_hold(api: Api) -> None:
    token = await admin_token(api)
    for method, template in ID_ROUTES:
        for bad in BAD_IDS:
            body: Any = {"POST": {"body": "b"}, "PATCH": {}, "PUT": {"name": "n", "body": "b"}}
            r = await status_admin(api, method, template.format(bad), token, json=body.get(method))
            # A new template's id is refused (400); an unknown one is not found (404).
            expected = (400, 404) if method == "PUT" else (404, 405)
            assert r.status_code in expected, (method, template, bad, r.status_code, r.text[:200])
            if r.status_code == 404 and r.headers.get("content-type", "").startswith(
                "application/json"
            ):
                assert r.json()["statusCode"] == 404
