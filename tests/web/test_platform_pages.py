"""The console's platform pages for administrators: automated emails (list, filter, one
email with its log, cancel, reschedule, resend; templates and jobs) and the status page
(components by hand, incidents with updates, maintenance)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from tests.conftest import PASSWORD, SUPERADMIN, Api
from tests.web.conftest import Visitor
from tests.web.test_console import approved_owner, register_form


async def until(visitor: Visitor, path: str, text: str) -> str:
    """The page once it shows ``text`` (the mailer and the status page learn of
    administrators and new agencies through the bus)."""
    for _ in range(200):
        page = await visitor.get(path)
        if page.status_code == 200 and text in page.text:
            return page.text
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never showed {text!r}")


async def test_emails_from_list_to_log_with_the_staff_actions(
    visitor: Visitor, web_app: Any, web_api: Api
) -> None:
    await visitor.sign_in(*SUPERADMIN)
    await until(visitor, "/console/admin/emails", "Emails")
    form = register_form(web_api)
    await visitor.post("/console/register", form)
    listing = await until(
        visitor, "/console/admin/emails?state=scheduled", "agency-registered-owner"
    )
    assert "2 emails" in listing
    owner_mail = re.search(
        r'href="/console/admin/emails/([0-9a-f]+)">[^<]*</a></td>\s*<td>agency #\d+: owner</td>'
        r"\s*<td>agency-registered-owner",
        listing,
    )
    assert owner_mail, listing
    url = f"/console/admin/emails/{owner_mail.group(1)}"
    page = await visitor.get(url)
    assert "Reschedule" in page.text and "Cancel" in page.text and "→" in page.text
    r = await visitor.post(f"{url}/reschedule", {"sendAt": "not a time"})
    assert r.status_code == 400 and visitor.alerts(r)
    r = await visitor.post(f"{url}/reschedule", {"sendAt": "2030-01-01T09:30"})
    assert r.status_code == 303
    assert "2030-01-01 09:30 UTC" in (await visitor.get(url)).text
    r = await visitor.post(f"{url}/cancel", {})
    assert r.status_code == 303
    page = await visitor.get(url)
    assert "cancelled" in page.text and "Send again" in page.text
    r = await visitor.post(f"{url}/cancel", {})
    assert r.status_code == 400 and visitor.alerts(r)  # not scheduled any more
    r = await visitor.post(f"{url}/resend", {})
    assert r.status_code == 303 and r.headers["location"] != url  # a new copy
    assert "Copy of" in (await visitor.get(r.headers["location"])).text
    r = await visitor.post(f"{url}/explode", {})
    assert r.status_code == 400
    for bad in ("../x", "%00", "z" * 40):
        assert (await visitor.get(f"/console/admin/emails/{bad}")).status_code in (400, 404)
    filtered = await visitor.get("/console/admin/emails", params={"recipient": "nobody-at-all"})
    assert "No email matches." in filtered.text
    assert (await visitor.get("/console/admin/emails?page=abc&state=bogus")).status_code == 200
    await web_app.state.mailer.run_once()  # the admins' email goes out


async def test_email_templates_are_edited_in_the_console(visitor: Visitor) -> None:
    await visitor.sign_in(*SUPERADMIN)
    listing = await until(visitor, "/console/admin/email-templates", "agency-approved")
    assert "Jobs" in listing and "event-starting-soon" in listing
    page = await visitor.get("/console/admin/email-templates/agency-approved")
    assert 'name="subject"' in page.text
    r = await visitor.post(
        "/console/admin/email-templates/agency-approved",
        {"subject": "{{ broken", "text": "Hello", "html": ""},
    )
    assert r.status_code == 400 and visitor.alerts(r)
    r = await visitor.post(
        "/console/admin/email-templates/agency-approved",
        {"subject": "Welcome aboard, {{ agency.name }}", "text": "You are approved.", "html": ""},
    )
    assert r.status_code == 303
    assert "Welcome aboard" in (await visitor.get("/console/admin/email-templates")).text


async def test_agency_staff_get_no_platform_pages(visitor: Visitor, web_api: Api) -> None:
    _agency, email = await approved_owner(visitor, web_api)
    await visitor.sign_in(email, PASSWORD)
    for path in (
        "/console/admin/emails",
        "/console/admin/status",
        "/console/admin/email-templates",
    ):
        r = await visitor.get(path)
        assert r.status_code in (401, 403) or r.headers.get("location") == "/console/sign-in", path


async def test_the_status_page_run_from_the_console(visitor: Visitor) -> None:
    await visitor.sign_in(*SUPERADMIN)
    page = await until(visitor, "/console/admin/status", "Components")
    component = re.search(r'action="/console/admin/status/components/([a-z0-9-]+)"', page)
    assert component
    comp = component.group(1)
    r = await visitor.post(
        f"/console/admin/status/components/{comp}", {"manual_status": "major_outage"}
    )
    assert r.status_code == 303
    page = await visitor.get("/console/admin/status")
    assert re.search(
        rf'id="manual-{comp}" name="manual_status">.*?value="major_outage" selected',
        page.text,
        re.S,
    )
    await visitor.post(f"/console/admin/status/components/{comp}", {"manual_status": ""})

    r = await visitor.post(
        "/console/admin/status/incidents",
        {"name": "Slow chats", "status": "investigating", "impact": "minor",
         "body": "Messages take a minute.", "component": comp,
         f"status:{comp}": "degraded_performance"},
    )  # fmt: skip
    assert r.status_code == 303
    page = await visitor.get("/console/admin/status")
    incident = re.search(r'href="/console/admin/status/incidents/([^"]+)">Slow chats', page.text)
    assert incident
    url = f"/console/admin/status/incidents/{incident.group(1)}"
    r = await visitor.post(url, {"status": "resolved", "body": "Back to normal."})
    assert r.status_code == 303
    page = await visitor.get(url)
    assert "Back to normal." in page.text and "Resolved" in page.text
    r = await visitor.post(url, {"status": "exploded", "body": "x"})
    assert r.status_code == 400 and visitor.alerts(r)
    r = await visitor.post("/console/admin/status/incidents", {"name": "", "body": ""})
    assert r.status_code == 400 and visitor.alerts(r)

    r = await visitor.post(
        "/console/admin/status/maintenances",
        {"name": "Database upgrade", "from": "2030-05-01T22:00", "until": "2030-05-01T23:00",
         "body": "PostgreSQL 17", "component": comp},
    )  # fmt: skip
    assert r.status_code == 303
    page = await visitor.get("/console/admin/status")
    maintenance = re.search(
        r'href="/console/admin/status/incidents/([^"]+)">Database upgrade', page.text
    )
    assert maintenance
    page = await visitor.get(f"/console/admin/status/incidents/{maintenance.group(1)}")
    assert "2030-05-01 22:00 UTC" in page.text and "In progress" in page.text
    # A subscriber (through the public API) is listed and removed.
    r = await visitor.client.post(
        "/statuspage/api/v2/subscribers", json={"email": "fan@example.org"}
    )
    assert r.status_code in (200, 201, 202), r.text
    page = await visitor.get("/console/admin/status")
    assert "fan@example.org" in page.text and "pending" in page.text
    removal = re.search(r'action="(/console/admin/status/subscribers/[^"]+/delete)"', page.text)
    assert removal
    assert (await visitor.post(removal.group(1), {})).status_code == 303
    assert "fan@example.org" not in (await visitor.get("/console/admin/status")).text

    r = await visitor.post(
        "/console/admin/status/maintenances",
        {"name": "Backwards", "from": "2030-05-02T22:00", "until": "2030-05-01T23:00", "body": "x"},
    )
    assert r.status_code == 400 and visitor.alerts(r)
