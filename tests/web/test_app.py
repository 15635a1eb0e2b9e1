"""The participant app over HTTP: signing up and in, finding the event, asking for help
with the location, the queue, cancelling, settings, the installable parts, and its answers
to bad, foreign and signed-out requests."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import Any

import pytest

from tests.conftest import Api
from tests.web.conftest import Visitor

PW = "participant-password-1"


async def event_on(web_api: Api) -> dict[str, Any]:
    """An approved agency's event that is on now (the app finds events that are not over)."""
    _agency, _owner, token = await web_api.register_agency()
    assert token
    event = await web_api.add_event(
        token, timeStart="2026-01-01T00:00:00.000Z", timeEnd="2099-01-01T00:00:00.000Z"
    )
    return event


async def participant(visitor: Visitor, email: str | None = None) -> str:
    email = email or f"p-{uuid.uuid4().hex[:8]}@example.org"
    await visitor.get("/app/sign-up")
    r = await visitor.post(
        "/app/sign-up",
        {"email": email, "phoneNumber": "+48600700800", "password": PW, "confirmPassword": PW},
    )
    assert r.status_code == 303, r.text
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("aidpost_app="))
    assert "HttpOnly" in cookie and "Path=/app" in cookie and "participant:" in cookie
    return email


async def wait_for_event(visitor: Visitor, name: str) -> str:
    for _ in range(100):  # the participant's read model of events fills through the bus
        page = await visitor.get("/app/help")
        if name in page.text:
            return page.text
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} never showed up")


async def test_sign_up_find_the_event_ask_for_help_and_cancel(
    visitor: Visitor, web_api: Api
) -> None:
    event = await event_on(web_api)
    await participant(visitor)
    r = await visitor.get("/app")
    assert r.headers["location"] == "/app/help"
    await wait_for_event(visitor, event["name"])
    found = await visitor.get("/app/help", params={"query": event["name"][:10]})
    assert f'href="/app/events/{event["id"]}"' in found.text
    none = await visitor.get("/app/help", params={"query": "no-such-event-anywhere"})
    assert "No event matches" in none.text
    page = await visitor.get(f"/app/events/{event['id']}")
    assert "I need medical assistance" in page.text and 'name="lat"' in page.text
    r = await visitor.post(
        f"/app/events/{event['id']}/help",
        {"problemType": "medical", "description": "", "lat": "52.2297", "lng": "21.0122"},
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/app/requests/")
    request_id = r.headers["location"].rsplit("/", 1)[1]
    page = await visitor.get(r.headers["location"])
    assert "Place" in page.text and 'id="position">1<' in page.text
    status = await visitor.get(f"/app/requests/{request_id}/status")
    assert status.json()["status"] == "waiting" and status.json()["position"] == 1
    assert status.headers["cache-control"] == "no-store"
    again = await visitor.get(f"/app/events/{event['id']}")
    assert "Help already requested." in again.text
    help_page = await visitor.get("/app/help")
    assert "Place 1 in the queue" in help_page.text
    r = await visitor.post(f"/app/requests/{request_id}/cancel", {})
    assert r.status_code == 303 and r.headers["location"] == f"/app/events/{event['id']}"
    assert "Request help" in (await visitor.get(r.headers["location"])).text


async def test_asking_twice_or_badly_shows_why(visitor: Visitor, web_api: Api) -> None:
    event = await event_on(web_api)
    await participant(visitor)
    await wait_for_event(visitor, event["name"])
    url = f"/app/events/{event['id']}/help"
    r = await visitor.post(url, {"problemType": "other", "description": ""})
    assert r.status_code == 400 and visitor.alerts(r)  # "other" needs words
    r = await visitor.post(url, {"problemType": "hunger", "description": "x"})
    assert r.status_code == 400 and visitor.alerts(r)
    # Coordinates that are no coordinates are left out, not sent.
    r = await visitor.post(url, {"problemType": "security", "lat": "nan", "lng": "1e999"})
    assert r.status_code == 303
    r = await visitor.post(url, {"problemType": "security"})
    assert r.status_code == 400 and "Help already requested." in r.text  # and a link to it


async def test_chats_and_settings(visitor: Visitor, web_api: Api) -> None:
    email = await participant(visitor)
    page = await visitor.get("/app/chats")
    assert page.status_code == 200 and "No chats yet" in page.text
    for bad in ("nope", "0" * 24, "Z" * 24):
        r = await visitor.get(f"/app/chats/{bad}")
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    settings = await visitor.get("/app/settings")
    assert email in settings.text and 'value="+48600700800"' in settings.text
    r = await visitor.post("/app/settings/phone", {"phoneNumber": "not a phone"})
    assert r.status_code == 400 and visitor.alerts(r)
    r = await visitor.post("/app/settings/phone", {"phoneNumber": "+48 600 700 801"})
    assert r.status_code == 303
    r = await visitor.post(
        "/app/settings/password",
        {"oldPassword": "wrong-password", "newPassword": "n" * 10, "confirmNewPassword": "n" * 10},
    )
    assert r.status_code == 400 and visitor.alerts(r)
    r = await visitor.post("/app/settings/delete", {"password": "wrong-password"})
    assert r.status_code == 400
    r = await visitor.post("/app/settings/delete", {"password": PW})
    assert r.status_code == 303 and r.headers["location"] == "/app/sign-in"
    await visitor.get("/app/sign-in")
    r = await visitor.post("/app/sign-in", {"email": email, "password": PW})
    assert r.status_code == 400  # the account is gone


async def test_sign_up_errors_and_sign_out(visitor: Visitor) -> None:
    await visitor.get("/app/sign-up")
    r = await visitor.post(
        "/app/sign-up",
        {"email": "bad", "phoneNumber": "+48600700800", "password": PW, "confirmPassword": "x"},
    )
    assert r.status_code == 400 and visitor.alerts(r) and PW not in r.text
    email = await participant(visitor)
    r = await visitor.post("/app/sign-out", {})
    assert r.headers["location"] == "/app/sign-in"
    # Nothing of this person stays on the phone (saved chats, the service worker's copies).
    assert r.headers["clear-site-data"] == '"cache", "storage"'
    assert (await visitor.get("/app/help")).status_code == 303
    await visitor.get("/app/sign-in")
    r = await visitor.post("/app/sign-in", {"email": email, "password": PW})
    assert r.status_code == 303 and r.headers["location"] == "/app"


async def test_the_console_and_the_app_keep_apart(visitor: Visitor, web_api: Api) -> None:
    """A participant's session is no console session, and the other way round."""
    await participant(visitor)
    r = await visitor.get("/console/events")
    assert r.status_code == 303 and r.headers["location"] == "/console/sign-in"
    token = visitor.client.cookies["aidpost_app"]
    visitor.client.cookies.set("aidpost_console", token, path="/console")
    r = await visitor.get("/console/events")
    assert r.status_code == 303  # a participant token is refused by the Organizer API


@pytest.mark.parametrize(
    "path", ["/app/help", "/app/chats", "/app/settings", "/app/events/1", "/app/requests/1"]
)
async def test_signed_out_visitors_are_sent_to_sign_in(visitor: Visitor, path: str) -> None:
    r = await visitor.get(path)
    assert r.status_code == 303 and r.headers["location"] == "/app/sign-in"


async def test_forms_need_their_token_and_this_site(visitor: Visitor) -> None:
    await visitor.get("/app/sign-in")
    r = await visitor.client.post("/app/sign-in", data={"email": "a@b.c", "password": "x"})
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
    r = await visitor.post(
        "/app/sign-up", {"email": "a@b.c"}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert r.status_code == 403
    r = await visitor.client.post(
        "/app/sign-in",
        content=b"x" * 30_000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 400


async def test_installable_and_readable_offline(visitor: Visitor) -> None:
    r = await visitor.get("/app/manifest.webmanifest")
    manifest = json.loads(r.text)
    assert r.headers["content-type"].startswith("application/manifest+json")
    assert manifest["start_url"] == "/app/help" and manifest["display"] == "standalone"
    assert {i["sizes"] for i in manifest["icons"]} >= {"192x192", "512x512"}
    for icon in manifest["icons"]:
        assert (await visitor.client.get(icon["src"])).status_code == 200
    sw = await visitor.get("/app/sw.js")
    assert sw.headers["content-type"].startswith("text/javascript")
    assert sw.headers["service-worker-allowed"] == "/app/"
    for path in re.findall(r'"(/web/static/[^"]+|/app/offline)"', sw.text):
        assert (await visitor.client.get(path)).status_code == 200, path
    page = await visitor.get("/app/sign-in")
    assert '<link rel="manifest" href="/app/manifest.webmanifest">' in page.text
    assert "worker-src 'self'" in page.headers["content-security-policy"]


async def test_unknown_app_pages_are_pages(visitor: Visitor) -> None:
    for method in ("GET", "POST", "DELETE"):
        r = await visitor.client.request(method, "/app/nowhere")
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
