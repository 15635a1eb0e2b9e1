"""The mailer's staff API through the whole app: platform administrators only; list,
filter, read with the log, cancel, reschedule, resend; templates; refusals."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from aidpost.core.settings import Settings
from tests.conftest import Api, Databases, make_settings


@pytest.fixture
def settings(databases: Databases, tmp_path: Path) -> Settings:
    # No worker in the app: the test sends when it wants to (app.state.mailer.run_once).
    return make_settings(databases, tmp_path, mailer_worker="false")


async def mailer(api: Api, method: str, path: str, token: str | None, **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await api.client.request(method, "/mailer-api" + path, headers=headers, **kw)


async def admin_token(api: Api) -> str:
    token = await api.superadmin()
    for _ in range(200):  # the mailer learns of administrators through the bus
        if (await mailer(api, "GET", "/emails", token)).status_code == 200:
            return token
        await asyncio.sleep(0.05)
    raise AssertionError("the mailer never learned of the superadmin")


async def emails(api: Api, token: str, query: str = "", total: int | None = None) -> Any:
    for _ in range(200):
        body = (await mailer(api, "GET", "/emails" + query, token)).json()
        if total is None or body["total"] == total:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {total} emails, have {body}")


async def test_only_platform_administrators(api: Api) -> None:
    admin = await admin_token(api)
    _agency, _owner_email, owner = await api.register_agency(approved=True)
    for token, status in ((None, 403), ("garbage", 403), (owner, 403), (admin, 200)):
        for method, path in (("GET", "/emails"), ("GET", "/templates"), ("GET", "/jobs"),
                             ("POST", "/emails/x/cancel")):  # fmt: skip
            r = await mailer(api, method, path, token)
            if status == 200 and path.endswith("cancel"):
                assert r.status_code == 404
                continue
            assert r.status_code == status, (token, path, r.text)
            if status == 403:
                assert r.json() == {"statusCode": 403, "message": "Forbidden resource",
                                    "error": "Forbidden"}  # fmt: skip


async def test_emails_can_be_found_read_cancelled_rescheduled_and_resent(api: Api) -> None:
    admin = await admin_token(api)
    _id, owner_email, _ = await api.register_agency(approved=False)
    listed = await emails(api, admin, "?state=scheduled", total=2)
    jobs = sorted(e["job"] for e in listed["emails"])
    assert jobs == ["agency-registered-admins", "agency-registered-owner"]
    owner_mail = next(e for e in listed["emails"] if e["job"] == "agency-registered-owner")

    r = await mailer(api, "POST", f"/emails/{owner_mail['id']}/cancel", admin)
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    r = await mailer(api, "POST", f"/emails/{owner_mail['id']}/cancel", admin)
    assert r.status_code == 400
    assert r.json()["message"] == "a cancelled email cannot be cancelled"

    assert await api.app.state.mailer.run_once() == 1  # the admins' email only
    sent = (await emails(api, admin, "?state=succeeded"))["emails"]
    assert [e["job"] for e in sent] == ["agency-registered-admins"]
    assert sent[0]["sentTo"] == ["superadmin@test.aidpost.example"]
    found = await emails(api, admin, "?recipient=SUPERADMIN@test")
    assert [e["id"] for e in found["emails"]] == [sent[0]["id"]]

    r = await mailer(api, "POST", f"/emails/{owner_mail['id']}/reschedule", admin,
                     json={"sendAt": "2020-01-01T00:00:00Z"})  # fmt: skip
    assert r.status_code == 200 and (r.json()["state"], r.json()["attempts"]) == ("scheduled", 0)
    assert await api.app.state.mailer.run_once() == 1
    detail = (await mailer(api, "GET", f"/emails/{owner_mail['id']}", admin)).json()
    assert detail["state"] == "succeeded" and detail["sentTo"] == [owner_email.lower()]
    assert [(e["from"], e["to"]) for e in detail["log"]] == [
        (None, "scheduled"), ("scheduled", "cancelled"), ("cancelled", "scheduled"),
        ("scheduled", "locked"), ("locked", "succeeded"),
    ]  # fmt: skip
    assert detail["log"][1]["actor"].startswith("staff:")

    r = await mailer(api, "POST", f"/emails/{owner_mail['id']}/resend", admin)
    assert r.status_code == 200
    copy = r.json()
    assert copy["resendOf"] == owner_mail["id"] and copy["state"] == "scheduled"
    assert copy["messageId"] != detail["messageId"]
    r = await mailer(api, "POST", f"/emails/{copy['id']}/resend", admin)
    assert r.status_code == 400 and "not sent yet" in r.json()["message"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/emails?state=lost", None, 400),
        ("GET", "/emails?limit=0", None, 400),
        ("GET", "/emails?limit=501", None, 400),
        ("GET", "/emails?offset=-1", None, 400),
        ("GET", "/emails?job=" + "j" * 101, None, 400),
        ("GET", "/emails/" + "x" * 5000, None, 404),
        ("GET", "/emails/nope", None, 404),
        ("POST", "/emails/nope/reschedule", {"sendAt": "2026-01-01T00:00:00Z"}, 404),
        ("POST", "/emails/nope/reschedule", {"sendAt": "yesterday"}, 400),
        ("POST", "/emails/nope/reschedule", {"sendAt": 5}, 400),
        ("POST", "/emails/nope/reschedule", {"sendAt": "2026-01-01T00:00:00Z", "x": 1}, 400),
        ("POST", "/emails/nope/reschedule", "not json", 400),
        ("POST", "/emails/nope/resend", None, 404),
        ("PUT", "/templates/Not A Name", {"subject": "s", "text": "t"}, 400),
        ("PUT", "/templates/agency-approved", {"subject": "", "text": "t"}, 400),
        ("PUT", "/templates/agency-approved", {"subject": "s", "text": "t" * 100_001}, 400),
        ("PUT", "/templates/agency-approved", {"subject": "{{ x", "text": "t"}, 400),
        ("PUT", "/templates/agency-approved", {"subject": "s", "text": "{% for %}"}, 400),
        ("PUT", "/templates/agency-approved", ["list"], 400),
        ("GET", "/templates/nope", None, 404),
    ],
)
async def test_bad_input_gets_a_clear_error(
    api: Api, method: str, path: str, body: Any, status: int
) -> None:
    admin = await admin_token(api)
    kw: dict[str, Any] = {}
    if isinstance(body, str):
        kw["content"] = body
        kw["headers"] = {"Authorization": f"Bearer {admin}", "Content-Type": "application/json"}
        r = await api.client.request(method, "/mailer-api" + path, **kw)
    else:
        if body is not None:
            kw["json"] = body
        r = await mailer(api, method, path, admin, **kw)
    assert r.status_code == status, r.text
    error = r.json()
    assert error["statusCode"] == status and error["message"] and error["error"]


async def test_templates_are_edited_checked_and_kept_over_a_deploy(api: Api) -> None:
    admin = await admin_token(api)
    names = [t["name"] for t in (await mailer(api, "GET", "/templates", admin)).json()]
    assert "agency-approved" in names and "help-request-waiting" in names
    r = await mailer(api, "PUT", "/templates/agency-approved", admin,
                     json={"subject": "{{ x", "text": "body"})  # fmt: skip
    assert r.json()["message"].startswith("template refused: subject part, line 1")
    new = {"subject": "Approved: {{ agency.name }}", "text": "Yes, {{ agency.name }}.",
           "html": None}  # fmt: skip
    r = await mailer(api, "PUT", "/templates/agency-approved", admin, json=new)
    assert r.status_code == 200 and r.json()["edited"] is True
    await api.app.state.mailer.seed_templates()  # what the next start does
    kept = (await mailer(api, "GET", "/templates/agency-approved", admin)).json()
    assert (kept["subject"], kept["text"], kept["html"]) == (new["subject"], new["text"], None)

    agency_id, _owner, _ = await api.register_agency(approved=False)
    await emails(api, admin, "?state=scheduled", total=2)
    r = await api.request("PATCH", f"/admin/agencies/{agency_id}/verify", admin,
                          json={"approved": True})  # fmt: skip
    assert r.status_code == 200
    await emails(api, admin, "?job=agency-approved", total=1)
    await api.app.state.mailer.run_once()
    approved = (await emails(api, admin, "?job=agency-approved"))["emails"][0]
    assert approved["state"] == "succeeded" and approved["subject"].startswith("Approved: ")
    sent = api.app.state.mailer.transport.sent
    assert any(str(m["Subject"]).startswith("Approved: ") for m in sent)


async def test_jobs_are_listed(api: Api) -> None:
    admin = await admin_token(api)
    jobs = {j["name"]: j for j in (await mailer(api, "GET", "/jobs", admin)).json()}
    assert jobs["help-request-waiting"]["cancelledBy"] == ["chat.started.v1", "help.cancelled.v1"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/emails?job=a%00b", None, 400),
        ("GET", "/emails?recipient=%00", None, 400),
        ("GET", "/emails?recipient=%ED%A0%80", None, 200),  # invalid UTF-8 decodes to U+FFFD
        ("GET", "/emails/%00", None, 404),
        ("GET", "/emails/%C5%BC", None, 404),
        ("POST", "/emails/%00/cancel", None, 404),
        ("POST", "/emails/%00/resend", None, 404),
        ("POST", "/emails/%00/reschedule", {"sendAt": "2026-01-01T00:00:00Z"}, 404),
        ("GET", "/templates/%00", None, 404),
        ("PUT", "/templates/%00", {"subject": "s", "text": "t"}, 400),
        ("PUT", "/templates/agency-approved", {"subject": "s\u0000", "text": "t"}, 400),
        ("PUT", "/templates/agency-approved", '{"subject": "s", "text": "\\ud800"}', 400),
    ],
)
async def test_text_no_database_can_hold_is_refused(
    api: Api, method: str, path: str, body: Any, status: int
) -> None:
    admin = await admin_token(api)
    if isinstance(body, str):  # raw JSON text (a lone surrogate escape cannot be encoded)
        kw: dict[str, Any] = {"content": body, "headers": {"Authorization": f"Bearer {admin}",
                              "Content-Type": "application/json"}}  # fmt: skip
        r = await api.client.request(method, "/mailer-api" + path, **kw)
    else:
        r = await mailer(api, method, path, admin, **({"json": body} if body else {}))
    assert r.status_code == status, r.text


async def test_only_the_superadmin_edits_templates_that_carry_secrets(api: Api) -> None:
    root = await admin_token(api)
    _admin_id, admin = await api.add_admin()
    for _ in range(200):  # the mailer learns of the new administrator through the bus
        if (await mailer(api, "GET", "/templates", admin)).status_code == 200:
            break
        await asyncio.sleep(0.05)
    body = {"subject": "Reset: {{ token }}", "text": "{{ token }}"}
    r = await mailer(api, "PUT", "/templates/password-reset", admin, json=body)
    assert r.status_code == 403
    r = await mailer(api, "PUT", "/templates/agency-approved", admin,
                     json={"subject": "Approved", "text": "Yes."})  # fmt: skip
    assert r.status_code == 200
    r = await mailer(api, "PUT", "/templates/password-reset", root, json=body)
    assert r.status_code == 200


async def test_a_new_template_for_an_own_job(api: Api) -> None:
    admin = await admin_token(api)
    body = {"subject": "Weekly check", "text": "The week from {{ occurrence }}."}
    r = await mailer(api, "PUT", "/templates/weekly-check", admin, json=body)
    assert r.status_code == 200, r.text
    assert r.json()["edited"] is True
    r = await mailer(api, "GET", "/templates/weekly-check", admin)
    assert r.status_code == 200 and r.json()["subject"] == "Weekly check"
