"""The status page through the whole app: the public JSON in Statuspage's shape, the feed,
badges and pages, subscribing, and the administration API with its refusals."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import feedparser
import jsonschema
import pytest

from aidpost.core.settings import Settings
from tests.conftest import Api, Databases, make_settings
from tests.participant.test_participant_auth import sign_up

SCHEMA = json.loads((Path(__file__).parent / "summary.schema.json").read_text())
FORBIDDEN = {"statusCode": 403, "message": "Forbidden resource", "error": "Forbidden"}


@pytest.fixture
def settings(databases: Databases, tmp_path: Path) -> Settings:
    return make_settings(databases, tmp_path, status_public_url="https://status.test")


def _formats() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker()

    @checker.checks("date-time", raises=ValueError)
    def _time(value: object) -> bool:
        if not isinstance(value, str) or "T" not in value:
            raise ValueError("not a date-time")
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None

    @checker.checks("uri", raises=ValueError)
    def _uri(value: object) -> bool:
        parts = urlsplit(str(value))
        return bool(parts.scheme in ("http", "https") and parts.netloc)

    return checker


def valid_summary(body: Any) -> None:
    jsonschema.Draft202012Validator(SCHEMA, format_checker=_formats()).validate(body)


async def status_admin(api: Api, method: str, path: str, token: str | None, **kw: Any) -> Any:
    headers = {**kw.pop("headers", {}), **({"Authorization": f"Bearer {token}"} if token else {})}
    return await api.client.request(method, "/statuspage-api" + path, headers=headers, **kw)


async def admin_token(api: Api) -> str:
    token = await api.superadmin()
    for _ in range(200):  # the status component learns of administrators through the bus
        if (await status_admin(api, "GET", "/components", token)).status_code == 200:
            return token
        await asyncio.sleep(0.05)
    raise AssertionError("the status component never learned of the superadmin")


async def get(api: Api, path: str) -> Any:
    r = await api.client.get(path)
    assert r.status_code == 200, (path, r.text)
    return r


async def test_summary_has_statuspage_shape_with_an_incident_and_maintenance(api: Api) -> None:
    token = await admin_token(api)
    slow = [{"id": "sign-in", "status": "degraded_performance"}]
    r = await status_admin(api, "POST", "/incidents", token, json={
        "name": "Slow sign-in", "status": "identified", "impact": "minor",
        "body": "Adding capacity.", "components": slow})  # fmt: skip
    assert r.status_code == 201, r.text
    incident = r.json()
    start = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    until = start + dt.timedelta(hours=1)
    r = await status_admin(api, "POST", "/maintenances", token, json={
        "name": "Database upgrade", "body": "PostgreSQL 17", "components": ["mailer"],
        "scheduled_for": start.isoformat(), "scheduled_until": until.isoformat()})  # fmt: skip
    assert r.status_code == 201, r.text

    summary = (await get(api, "/statuspage/api/v2/summary.json")).json()
    valid_summary(summary)
    assert summary["status"] == {"indicator": "minor", "description": "Minor Service Outage"}
    assert [i["name"] for i in summary["incidents"]] == ["Slow sign-in"]
    assert summary["incidents"][0]["shortlink"] == (
        f"https://status.test/statuspage/incidents/{incident['id']}"
    )
    assert [m["status"] for m in summary["scheduled_maintenances"]] == ["scheduled"]
    by_id = {c["id"]: c for c in summary["components"]}
    assert by_id["sign-in"]["status"] == "degraded_performance"
    assert by_id["services"]["group"] is True and "sign-in" in by_id["services"]["components"]
    assert by_id["sign-in"]["group_id"] == "services"

    sm = "scheduled_maintenances"
    for path, key in (("status.json", "status"), ("components.json", "components"),
                      ("incidents.json", "incidents"), ("incidents/unresolved.json", "incidents"),
                      ("scheduled-maintenances.json", sm),
                      ("scheduled-maintenances/upcoming.json", sm),
                      ("scheduled-maintenances/active.json", sm)):  # fmt: skip
        body = (await get(api, f"/statuspage/api/v2/{path}")).json()
        assert set(body) == {"page", key}, path
    active = (await get(api, "/statuspage/api/v2/scheduled-maintenances/active.json")).json()
    assert active["scheduled_maintenances"] == []

    # Resolve: the summary is back to all operational, the incident is history.
    r = await status_admin(api, "POST", f"/incidents/{incident['id']}/updates", token,
                           json={"status": "resolved", "body": "Done."})  # fmt: skip
    assert r.status_code == 200, r.text
    assert [u["status"] for u in r.json()["incident_updates"]] == ["resolved", "identified"]
    summary = (await get(api, "/statuspage/api/v2/summary.json")).json()
    valid_summary(summary)
    assert summary["status"]["indicator"] == "none" and summary["incidents"] == []


async def test_feed_badges_and_pages(api: Api) -> None:
    token = await admin_token(api)
    r = await status_admin(api, "POST", "/incidents", token, json={
        "name": "Chat <delays> & more", "impact": "major", "body": "Messages arrive late.",
        "components": [{"id": "messenger", "status": "partial_outage"}]})  # fmt: skip
    assert r.status_code == 201, r.text

    r = await get(api, "/statuspage/history.atom")
    assert r.headers["content-type"].startswith("application/atom+xml")
    feed = feedparser.parse(r.content)
    assert feed.bozo == 0, feed.get("bozo_exception")
    assert feed.feed.title == "aidpost status: incidents and maintenance"
    [entry] = feed.entries
    assert entry.title == "Chat <delays> & more (investigating)"
    assert "Messages arrive late." in entry.content[0].value
    assert entry.link.startswith("https://status.test/statuspage/incidents/")

    svg = await get(api, "/statuspage/badge/messenger/status.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    texts = [t.text for t in ET.fromstring(svg.content).iter("{http://www.w3.org/2000/svg}text")]
    assert texts == ["Live chat", "partial outage"]
    up = await get(api, "/statuspage/badge/messenger/uptime.svg?window=7d")
    texts = [t.text for t in ET.fromstring(up.content).iter("{http://www.w3.org/2000/svg}text")]
    assert texts == ["uptime 7d", "no data"]
    for bad in (
        "/statuspage/badge/nope/status.svg",
        "/statuspage/badge/messenger/uptime.svg?window=1y",
    ):
        r = await api.client.get(bad)
        assert r.status_code in (400, 404) and r.json()["statusCode"] == r.status_code

    page = await get(api, "/statuspage")
    assert "script-src" not in page.headers["content-security-policy"]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "<script" not in page.text
    assert "Chat &lt;delays&gt; &amp; more" in page.text  # escaped
    assert "Partial System Outage" in page.text
    assert (await api.client.get("/statuspage/style.css")).status_code == 200
    comp = await get(api, "/statuspage/components/messenger")
    assert "Live chat" in comp.text
    assert (await api.client.get("/statuspage/components/nope")).status_code == 404
    assert (await api.client.get("/statuspage/incidents/nope")).status_code == 404
    assert (await api.client.get("/statuspage/incidents/" + "é" * 80)).status_code == 404
    uptime = (await get(api, "/statuspage/api/v2/uptime.json")).json()
    [chat] = [c for c in uptime["components"] if c["id"] == "messenger"]
    assert len(chat["days"]) == 90 and set(chat["uptime"]) == {"24h", "7d", "30d", "90d"}


async def test_subscribing_through_the_api_and_the_form(api: Api) -> None:
    r = await api.client.post("/statuspage/api/v2/subscribers", json={"email": "a@example.org"})
    assert r.status_code == 202, r.text
    r = await api.client.post(
        "/statuspage/api/v2/subscribers", json={"email": "b@example.org", "components": ["bus"]}
    )
    assert r.status_code == 202, r.text
    for body in ({"email": "nope"}, {"email": "a@example.org", "components": ["NOPE!"]},
                 {"email": "a@example.org", "components": ["unknown"]},
                 {"email": "a@example.org", "extra": 1}, {"email": "a\x00@example.org"},
                 {"email": "a@example.org", "components": []},
                 {"email": "x" * 400 + "@example.org"}, {}, []):  # fmt: skip
        r = await api.client.post("/statuspage/api/v2/subscribers", json=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["statusCode"] == 400
    r = await api.client.post(
        "/statuspage/api/v2/subscribers",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400

    form = {"content-type": "application/x-www-form-urlencoded"}
    r = await api.client.post(
        "/statuspage/subscribe", content=b"email=c%40example.org&component=bus", headers=form
    )
    assert r.status_code == 202 and "Check your inbox" in r.text
    for raw in (
        b"email=",
        b"email=not-an-address",
        b"email=c%40example.org&component=nope",
        b"\xff\xfe",
    ):
        r = await api.client.post("/statuspage/subscribe", content=raw, headers=form)
        assert r.status_code == 400 and "Not subscribed" in r.text, raw
    r = await api.client.post("/statuspage/subscribe", json={"email": "c@example.org"})
    assert r.status_code == 400
    r = await api.client.post(
        "/statuspage/subscribe", content=b"email=" + b"a" * 30_000, headers=form
    )
    assert r.status_code == 400

    token = await admin_token(api)
    subs = (await status_admin(api, "GET", "/subscribers", token)).json()
    assert sorted(s["email"] for s in subs) == ["a@example.org", "b@example.org", "c@example.org"]
    assert all(s["confirmed_at"] is None for s in subs)  # nobody confirmed yet

    r = await api.client.get("/statuspage/confirm/wrong")
    assert r.status_code == 200 and 'method="post"' in r.text  # a button, not an action
    assert (await api.client.post("/statuspage/confirm/wrong")).status_code == 404
    r = await api.client.get("/statuspage/unsubscribe/whatever")
    assert r.status_code == 200 and 'method="post"' in r.text  # a button, not an action
    r = await api.client.post("/statuspage/unsubscribe/whatever")
    assert r.status_code == 200  # the same answer for any token: it tells nothing


async def test_only_platform_administrators(api: Api) -> None:
    admin = await admin_token(api)
    _agency, _owner_email, owner = await api.register_agency(approved=True)
    _admin_id, other_admin = await api.add_admin()
    participant = await _participant(api)
    routes = [("GET", "/components"), ("POST", "/components"), ("GET", "/components/bus"),
              ("PATCH", "/components/bus"), ("DELETE", "/components/x"),
              ("GET", "/components/bus/results"), ("POST", "/groups"), ("DELETE", "/groups/x"),
              ("GET", "/incidents"), ("POST", "/incidents"), ("GET", "/incidents/x"),
              ("POST", "/incidents/x/updates"), ("DELETE", "/incidents/x"),
              ("POST", "/maintenances"), ("GET", "/subscribers"), ("DELETE", "/subscribers/x"),
              ("GET", "/webhooks"), ("POST", "/webhooks"), ("DELETE", "/webhooks/x"),
              ("GET", "/webhooks/x/deliveries"), ("GET", "/incident-templates"),
              ("PUT", "/incident-templates/x"), ("DELETE", "/incident-templates/x")]  # fmt: skip
    staff_form = participant.replace("participant:", "organizer:", 1)
    for token in (None, "garbage", staff_form, participant, owner):
        for method, path in routes:
            r = await status_admin(api, method, path, token, json={})
            assert r.status_code == 403, (token, method, path, r.text)
            assert r.json() == FORBIDDEN
    for _ in range(200):  # an administrator made later is known soon after
        if (await status_admin(api, "GET", "/components", other_admin)).status_code == 200:
            break
        await asyncio.sleep(0.05)
    r = await status_admin(api, "GET", "/components", other_admin)
    assert r.status_code == 200
    r = await status_admin(api, "GET", "/components/bus/results?limit=5", admin)
    assert r.status_code == 200


async def _participant(api: Api) -> str:
    token: str = (await sign_up(api, api.unique("p") + "@example.com"))["token"]
    return token


async def test_administration_refuses_bad_input(api: Api) -> None:
    token = await admin_token(api)
    good = {"id": "website", "name": "Website", "kind": "http", "target": "https://example.org/"}
    bad_components = [
        {**good, "id": "Not A Slug"}, {**good, "id": "x" * 65}, {**good, "kind": "ftp"},
        {**good, "target": None}, {**good, "target": "example.org"},
        {**good, "kind": "tcp", "target": "example.org"},
        {**good, "kind": "tcp", "target": "h:99999"},
        {**good, "kind": "tls", "target": "h:\uff11\uff12"}, {**good, "interval": 1},
        {**good, "timeout": 0}, {**good, "name": ""}, {**good, "name": "n" * 201},
        {**good, "name": "a\x00b"}, {**good, "extra": True}, {**good, "group_id": "nope"},
        {**good, "expect": {"status": [700]}}, {**good, "expect": {"other": 1}},
        {**good, "interval": "60"}, {**good, "interval": 10**30}, [], "x", None,
    ]  # fmt: skip
    for body in bad_components:
        r = await status_admin(api, "POST", "/components", token, json=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["statusCode"] == 400 and r.json()["error"] == "Bad Request"
    r = await status_admin(api, "POST", "/components", token, json=good)
    assert r.status_code == 201, r.text
    assert (await status_admin(api, "POST", "/components", token, json=good)).status_code == 409
    r = await status_admin(api, "PATCH", "/components/website", token, json={"name": None})
    assert r.status_code == 400
    r = await status_admin(api, "PATCH", "/components/website", token, json={"name": "Site"})
    assert r.status_code == 200 and r.json()["name"] == "Site"
    r = await status_admin(api, "PATCH", "/components/bus", token, json={"name": "Renamed"})
    assert r.status_code == 400  # configured: changed in the configuration
    r = await status_admin(
        api, "PATCH", "/components/bus", token, json={"manual_status": "major_outage"}
    )
    assert r.status_code == 200 and r.json()["status"] == "major_outage"
    r = await status_admin(api, "PATCH", "/components/bus", token, json={"manual_status": "broken"})
    assert r.status_code == 400
    assert (await status_admin(api, "DELETE", "/components/bus", token)).status_code == 400
    assert (await status_admin(api, "DELETE", "/components/website", token)).status_code == 200
    assert (await status_admin(api, "DELETE", "/components/website", token)).status_code == 404
    assert (await status_admin(api, "GET", "/components/" + "é" * 70, token)).status_code == 404

    bad_incidents = [
        {"name": "x"}, {"name": "x", "body": "y", "status": "resolved"},
        {"name": "x", "body": "y", "impact": "apocalyptic"},
        {"name": "x", "body": "y", "components": [{"id": "nope"}]},
        {"name": "x", "body": "y", "components": [{"id": "bus"}, {"id": "bus"}]},
        {"name": "x", "body": "y" * 10_001}, {"name": "x", "body": "y", "notify": "maybe"},
    ]  # fmt: skip
    for body in bad_incidents:
        r = await status_admin(api, "POST", "/incidents", token, json=body)
        assert r.status_code == 400, (body, r.text)
    r = await status_admin(api, "POST", "/maintenances", token, json={
        "name": "m", "body": "b", "scheduled_for": "2030-01-01T00:00:00Z",
        "scheduled_until": "2029-01-01T00:00:00Z"})  # fmt: skip
    assert r.status_code == 400
    r = await status_admin(api, "POST", "/maintenances", token, json={
        "name": "m", "body": "b", "scheduled_for": "soon", "scheduled_until": "later"})  # fmt: skip
    assert r.status_code == 400
    r = await status_admin(api, "POST", "/incidents/nope/updates", token, json={"body": "x"})
    assert r.status_code == 404
    r = await status_admin(api, "POST", "/incidents", token, json={"name": "x", "body": "y"})
    inc = r.json()["id"]
    r = await status_admin(api, "POST", f"/incidents/{inc}/updates", token,
                           json={"body": "x", "status": "completed"})  # fmt: skip
    assert r.status_code == 400  # a maintenance status on an incident
    assert (await status_admin(api, "DELETE", f"/incidents/{inc}", token)).status_code == 200
    assert (await status_admin(api, "GET", f"/incidents/{inc}", token)).status_code == 404

    for body in (
        {"url": "ftp://x"},
        {"url": "https://a b"},
        {"url": "https://x", "components": ["nope"]},
    ):
        r = await status_admin(api, "POST", "/webhooks", token, json=body)
        assert r.status_code == 400, body
    r = await status_admin(api, "POST", "/webhooks", token, json={"url": "https://hooks.example/x"})
    assert r.status_code == 201 and len(r.json()["secret"]) >= 40
    listed = (await status_admin(api, "GET", "/webhooks", token)).json()
    assert "secret" not in listed[0]  # shown once only
    r = await status_admin(
        api,
        "POST",
        "/components",
        token,
        content=b"{",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400
    r = await status_admin(api, "GET", "/incidents?limit=0", token)
    assert r.status_code == 400
    r = await status_admin(api, "GET", "/incidents?kind=other", token)
    assert r.status_code == 400


async def test_incident_templates(api: Api) -> None:
    token = await admin_token(api)
    template = {"name": "Emails are late", "body": "Our mail provider is slow; emails arrive late.",
                "status": "identified", "impact": "minor",
                "components": [{"id": "mailer", "status": "degraded_performance"}]}  # fmt: skip
    r = await status_admin(api, "PUT", "/incident-templates/mail-slow", token, json=template)
    assert r.status_code == 200, r.text
    for path, body in (("/incident-templates/Bad Id", template),
                       ("/incident-templates/x", {**template, "status": "resolved"}),
                       ("/incident-templates/x", {**template, "components": [{"id": "nope"}]}),
                       ("/incident-templates/x", {**template, "name": ""})):  # fmt: skip
        r = await status_admin(api, "PUT", path, token, json=body)
        assert r.status_code == 400, (path, body, r.text)
    listed = (await status_admin(api, "GET", "/incident-templates", token)).json()
    assert [t["id"] for t in listed] == ["mail-slow"]

    r = await status_admin(api, "POST", "/incidents", token, json={"template": "mail-slow"})
    assert r.status_code == 201, r.text
    opened = r.json()
    assert (opened["name"], opened["status"], opened["impact"]) == (
        "Emails are late", "identified", "minor")  # fmt: skip
    assert opened["incident_updates"][0]["body"] == template["body"]
    assert [c["id"] for c in opened["components"]] == ["mailer"]
    assert opened["components"][0]["status"] == "degraded_performance"
    r = await status_admin(api, "POST", "/incidents", token,
                           json={"template": "mail-slow", "name": "Emails are very late",
                                 "components": []})  # fmt: skip
    assert r.status_code == 201 and r.json()["name"] == "Emails are very late"
    assert r.json()["components"] == []  # what is given wins over the template
    r = await status_admin(api, "POST", "/incidents", token, json={"template": "nope"})
    assert r.status_code == 400 and "does not exist" in r.json()["message"]
    r = await status_admin(api, "POST", "/incidents", token, json={"body": "no name"})
    assert r.status_code == 400
    assert (
        await status_admin(api, "DELETE", "/incident-templates/mail-slow", token)
    ).status_code == 200
    assert (
        await status_admin(api, "DELETE", "/incident-templates/mail-slow", token)
    ).status_code == 404


async def test_history_pages(api: Api) -> None:
    token = await admin_token(api)
    for n in range(23):
        body = {"name": f"Incident {n:02}", "body": "x", "notify": False}
        r = await status_admin(api, "POST", "/incidents", token, json=body)
        assert r.status_code == 201
    first = await get(api, "/statuspage/history")
    assert "Incident 22" in first.text and "Incident 03" in first.text
    assert "Incident 02" not in first.text and 'rel="next"' in first.text
    second = await get(api, "/statuspage/history?page=2")
    assert "Incident 02" in second.text and "Incident 00" in second.text
    assert 'rel="prev"' in second.text and 'rel="next"' not in second.text
    assert "Nothing on this page." in (await get(api, "/statuspage/history?page=9")).text
    for bad in ("0", "-1", "x", "10001", "9" * 40):
        r = await api.client.get(f"/statuspage/history?page={bad}")
        assert r.status_code == 400, bad


async def test_hostile_keys_and_text_find_nothing_and_break_nothing(api: Api) -> None:
    token = await admin_token(api)
    long = "/statuspage/components/" + "x" * 5000
    for path in ("/statuspage/incidents/%00", "/statuspage/components/%00",
                 "/statuspage/badge/%00/status.svg", "/statuspage/badge/%00/uptime.svg",
                 "/statuspage/incidents/%C5%BC", long):  # fmt: skip
        r = await api.client.get(path)
        assert r.status_code == 404, (path, r.text)
    for path in ("/statuspage/unsubscribe/%00", "/statuspage/confirm/%00",
                 "/statuspage/confirm/" + "x" * 5000):  # fmt: skip
        r = await api.client.post(path)
        assert r.status_code in (200, 404), (path, r.text)
    form = {"content-type": "application/x-www-form-urlencoded"}
    r = await api.client.post(
        "/statuspage/subscribe", content=b"email=c%40example.org&component=%00", headers=form
    )
    assert r.status_code == 400
    for url in ("http://[::1", "http://xn--ls8h-/", "https:// x", "http://"):
        r = await status_admin(api, "POST", "/webhooks", token, json={"url": url})
        assert r.status_code == 400, url
        body = {"id": "site", "name": "Site", "kind": "http", "target": url}
        r = await status_admin(api, "POST", "/components", token, json=body)
        assert r.status_code == 400, url
    # Control characters in an incident do not break the feed.
    r = await status_admin(api, "POST", "/incidents", token,
                           json={"name": "Esc \x1b and \x0c", "body": "bell \x07"})  # fmt: skip
    assert r.status_code == 201, r.text
    feed = feedparser.parse((await get(api, "/statuspage/history.atom")).content)
    assert feed.bozo == 0 and feed.entries[0].title.startswith("Esc")
