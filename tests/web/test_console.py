"""The organizer console over HTTP: its journeys without a browser, its cookies and CSRF
defence, and its answers to bad, foreign and unauthorized requests (always a page, never a
500 or the APIs' JSON)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from aidpost.web.security import CSRF_COOKIE
from tests.conftest import PASSWORD, SUPERADMIN, Api
from tests.web.conftest import Visitor, client_for


def register_form(api: Api, **overrides: str) -> dict[str, str]:
    body = api.register_body()
    form = {f"agency.{k}": v for k, v in body["agency"].items()}
    form.update({f"owner.{k}": v for k, v in body["owner"].items()})
    form.update(overrides)
    return form


async def approved_owner(visitor: Visitor, web_api: Api) -> tuple[int, str]:
    """Register through the page, approve through the API; return (agency id, email)."""
    form = register_form(web_api)
    r = await visitor.post("/console/register", form)
    assert r.status_code == 303, r.text
    admin = await web_api.superadmin()
    agencies = (await web_api.request("GET", "/admin/agencies", admin)).json()
    agency = next(a for a in agencies if a["name"] == form["agency.name"])
    await web_api.request(
        "PATCH", f"/admin/agencies/{agency['id']}/verify", admin, json={"approved": True}
    )
    return agency["id"], form["owner.email"]


async def test_sign_in_page_sets_a_csrf_nonce_and_strict_headers(visitor: Visitor) -> None:
    r = await visitor.get("/console/sign-in")
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert r.headers["cache-control"] == "no-store"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{CSRF_COOKIE}=") and "HttpOnly" in cookie
    assert "SameSite=lax" in cookie and "Secure" not in cookie  # plain HTTP here
    assert 'autocomplete="current-password"' in r.text
    assert visitor.csrf


async def test_sign_in_sets_an_httponly_session_cookie_scoped_to_the_console(
    visitor: Visitor,
) -> None:
    r = await visitor.sign_in(*SUPERADMIN)
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("aidpost_console="))
    assert "HttpOnly" in cookie and "Path=/console" in cookie and "SameSite=lax" in cookie
    assert "organizer:" in cookie  # the token exactly as the Organizer API issued it
    assert r.headers["location"] == "/console"
    page = await visitor.get("/console", follow_redirects=True)
    assert str(page.url).endswith("/console/admin/agencies")
    assert "organizer:" not in page.text  # the token never reaches the page


async def test_cookies_are_secure_over_https(web_app: Any) -> None:
    async with client_for(web_app, "https://aidpost.test") as client:
        visitor = Visitor(client)
        r = await visitor.get("/console/sign-in")
        assert "Secure" in r.headers["set-cookie"]
        r = await visitor.post(
            "/console/sign-in", {"email": SUPERADMIN[0], "password": SUPERADMIN[1]}
        )
        assert all("Secure" in c for c in r.headers.get_list("set-cookie"))


async def test_a_wrong_password_shows_the_apis_message_and_keeps_the_email(
    visitor: Visitor,
) -> None:
    await visitor.get("/console/sign-in")
    r = await visitor.post(
        "/console/sign-in", {"email": SUPERADMIN[0], "password": "not-the-password-at-all"}
    )
    assert r.status_code == 400
    assert visitor.alerts(r)
    assert f'value="{SUPERADMIN[0]}"' in r.text
    assert "aidpost_console" not in r.headers.get("set-cookie", "")


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.example"},
    ],
)
async def test_forms_from_other_sites_are_refused(
    visitor: Visitor, headers: dict[str, str]
) -> None:
    await visitor.get("/console/sign-in")
    r = await visitor.post(
        "/console/sign-in", {"email": SUPERADMIN[0], "password": SUPERADMIN[1]}, headers=headers
    )
    assert r.status_code == 403
    assert "another site" in r.text
    assert "aidpost_console" not in r.headers.get("set-cookie", "")


@pytest.mark.parametrize("token", ["", "forged", "A" * 43])
async def test_a_form_without_its_token_is_refused(visitor: Visitor, token: str) -> None:
    await visitor.get("/console/sign-in")
    r = await visitor.client.post(
        "/console/sign-in",
        data={"csrf": token, "email": SUPERADMIN[0], "password": SUPERADMIN[1]},
    )
    assert r.status_code == 403 and "expired" in r.text
    assert r.headers["content-type"].startswith("text/html")


async def test_a_token_from_another_browser_is_refused(web_app: Any, visitor: Visitor) -> None:
    await visitor.get("/console/sign-in")
    async with client_for(web_app) as other_client:
        other = Visitor(other_client)
        await other.get("/console/sign-in")
        r = await other.client.post(
            "/console/sign-in",
            data={"csrf": visitor.csrf, "email": SUPERADMIN[0], "password": SUPERADMIN[1]},
        )
    assert r.status_code == 403


async def test_the_same_origin_header_is_accepted(visitor: Visitor) -> None:
    await visitor.get("/console/sign-in")
    r = await visitor.post(
        "/console/sign-in",
        {"email": SUPERADMIN[0], "password": SUPERADMIN[1]},
        headers={"Origin": "http://aidpost.test", "Sec-Fetch-Site": "same-origin"},
    )
    assert r.status_code == 303


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"email": "x"}', "application/json"),
        (b"email=" + b"x" * 30_000, "application/x-www-form-urlencoded"),
        (b"email=%ff%fe&csrf=\xff", "application/x-www-form-urlencoded"),
        (b"", "text/plain"),
    ],
)
async def test_malformed_and_oversized_forms_get_a_page(
    visitor: Visitor, content: bytes, content_type: str
) -> None:
    await visitor.get("/console/sign-in")
    r = await visitor.client.post(
        "/console/sign-in", content=content, headers={"Content-Type": content_type}
    )
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("text/html")
    assert visitor.alerts(r)


@pytest.mark.parametrize(
    "path", ["/console/events", "/console/users/new", "/console/profile", "/console/agency"]
)
async def test_signed_out_visitors_are_sent_to_sign_in(visitor: Visitor, path: str) -> None:
    r = await visitor.get(path)
    assert r.status_code == 303 and r.headers["location"] == "/console/sign-in"


async def test_a_forged_or_revoked_session_signs_out(visitor: Visitor) -> None:
    visitor.client.cookies.set("aidpost_console", "organizer:not.a.jwt", path="/console")
    r = await visitor.get("/console/events")
    assert r.status_code == 303 and r.headers["location"] == "/console/sign-in"
    assert 'aidpost_console=""' in r.headers["set-cookie"]  # the dead cookie goes
    visitor.client.cookies.clear()
    await visitor.sign_in(*SUPERADMIN)
    await visitor.post("/console/sign-out", {})
    r = await visitor.get("/console/admin/agencies")
    assert r.status_code == 303


async def test_a_signed_out_token_no_longer_works(visitor: Visitor) -> None:
    await visitor.sign_in(*SUPERADMIN)
    token = visitor.client.cookies["aidpost_console"]
    r = await visitor.post("/console/sign-out", {})
    assert r.status_code == 303
    assert 'aidpost_console=""' in r.headers["set-cookie"] or "Max-Age=0" in r.headers["set-cookie"]
    visitor.client.cookies.set("aidpost_console", token, path="/console")
    r = await visitor.get("/console/admin/agencies")
    assert r.status_code == 303 and r.headers["location"] == "/console/sign-in"


async def test_unknown_pages_and_bad_ids_get_an_html_404(visitor: Visitor) -> None:
    assert (await visitor.get("/console/nope")).status_code == 404  # signed out, too
    r = await visitor.client.put("/console/events")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    await visitor.sign_in(*SUPERADMIN)
    r = await visitor.get("/console/")
    assert r.status_code == 303 and r.headers["location"] == "/console/admin/agencies"
    r = await visitor.get("/console/admin/changelogs?userId=%C2%B2")
    assert r.status_code == 400
    for path in ("/console/nope", "/console/events/abc", "/console/events/99999"):
        r = await visitor.get(path)
        assert r.status_code in (403, 404), path
        assert r.headers["content-type"].startswith("text/html"), path


async def test_registration_errors_are_shown_and_the_form_kept(
    visitor: Visitor, web_api: Api
) -> None:
    form = register_form(web_api, **{"owner.confirmPassword": "something-else-entirely"})
    r = await visitor.post("/console/register", form)
    assert r.status_code == 400
    assert any("password" in a.lower() for a in visitor.alerts(r))
    assert form["agency.name"] in r.text and form["owner.email"] in r.text
    assert PASSWORD not in r.text  # passwords are never echoed


async def test_an_unapproved_agency_cannot_sign_in(visitor: Visitor, web_api: Api) -> None:
    form = register_form(web_api)
    r = await visitor.post("/console/register", form)
    assert r.status_code == 303 and r.headers["location"] == "/console/sign-in"
    page = await visitor.get("/console/sign-in")
    assert "approves it" in page.text  # the notice after the redirect, once
    assert "approves it" not in (await visitor.get("/console/sign-in")).text
    r = await visitor.post("/console/sign-in", {"email": form["owner.email"], "password": PASSWORD})
    assert r.status_code == 400


async def test_admin_approves_and_previews_an_agency(visitor: Visitor, web_api: Api) -> None:
    form = register_form(web_api)
    await visitor.post("/console/register", form)
    await visitor.sign_in(*SUPERADMIN)
    page = await visitor.get("/console/admin/agencies")
    assert "1 waiting" in page.text and form["agency.name"] in page.text
    agency_id = re.search(r'href="/console/admin/agencies/(\d+)"', page.text)
    assert agency_id
    url = f"/console/admin/agencies/{agency_id.group(1)}"
    r = await visitor.post(f"{url}/verify", {"approved": "true"})
    assert r.status_code == 303
    page = await visitor.get(url)
    assert "approved" in page.text.lower() and "Revoke approval" in page.text
    r = await visitor.post(f"{url}/preview", {})
    assert r.headers["location"] == "/console/events"
    page = await visitor.get("/console/events")
    assert page.status_code == 200 and "Leave preview" in page.text
    r = await visitor.post("/console/preview/leave", {})
    page = await visitor.get("/console/events", follow_redirects=True)
    assert "Leave preview" not in page.text


async def test_owner_manages_users_with_the_seniority_rule(visitor: Visitor, web_api: Api) -> None:
    _agency, email = await approved_owner(visitor, web_api)
    await visitor.sign_in(email, PASSWORD)
    page = await visitor.get("/console/users/new")
    options = re.findall(r'<option value="(\d)"', page.text)
    assert options == ["3", "4"]  # manager and support: junior to the owner
    user = web_api.user_body(4)
    form = {k: str(v) for k, v in user.items()}
    r = await visitor.post("/console/users/new", form)
    assert r.status_code == 303, r.text
    listing = await visitor.get("/console/users")
    assert user["email"] in listing.text
    user_id = re.search(r'href="/console/users/(\d+)">Ula User', listing.text)
    assert user_id
    r = await visitor.post(
        f"/console/users/{user_id.group(1)}",
        {"firstName": "Uma", "lastName": "User", "phoneNumber": "+48123456789", "role": "3"},
    )
    assert r.status_code == 303
    assert "Uma User" in (await visitor.get("/console/users")).text
    # An owner cannot be made through the form: the API refuses, the page says why.
    r = await visitor.post(
        "/console/users/new", {**form, "email": "x" + user["email"], "role": "2"}
    )
    assert r.status_code in (400, 403)
    assert visitor.alerts(r)


async def test_support_reads_but_cannot_write(visitor: Visitor, web_api: Api) -> None:
    _agency, email = await approved_owner(visitor, web_api)
    owner_token = await web_api.sign_in(email)
    event = await web_api.add_event(owner_token)
    _id, _token = await web_api.add_user(owner_token, 4)
    users = (await web_api.request("GET", "/agency/users", owner_token)).json()
    support = next(u for u in users if u["role"] == 4)
    await visitor.sign_in(support["email"], PASSWORD)
    listing = await visitor.get("/console/events")
    assert event["name"] in listing.text and "Add event" not in listing.text
    page = await visitor.get(f"/console/events/{event['id']}")
    assert (
        page.status_code == 200 and '<form method="post" action="/console/events/' not in page.text
    )
    sneaky = web_api.event_body(
        lat="52.2", lng="21.0", timeStart="2027-01-01T10:00", timeEnd="2027-01-02T10:00"
    )
    r = await visitor.post("/console/events/new", {k: str(v) for k, v in sneaky.items()})
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
    r = await visitor.post(f"/console/events/{event['id']}/delete", {})
    assert r.status_code == 403
    r = await visitor.get("/console/admin/agencies")
    assert r.status_code == 403


async def test_events_and_contacts_from_form_to_api_and_back(
    visitor: Visitor, web_api: Api
) -> None:
    _agency, email = await approved_owner(visitor, web_api)
    await visitor.sign_in(email, PASSWORD)
    form = {
        "name": "Open'er <Festival>",
        "description": "Four days of music.\nGate B for first aid.",
        "address": "Gdynia-Kosakowo airport",
        "lat": "54.5503",
        "lng": "18.4672",
        "timeStart": "2027-07-01T12:00",
        "timeEnd": "2027-07-04T23:30",
    }
    r = await visitor.post("/console/events/new", form)
    assert r.status_code == 303, r.text
    owner_token = await web_api.sign_in(email)
    [event] = (await web_api.request("GET", "/agency/events", owner_token)).json()
    assert event["lat"] == 54.5503 and event["timeStart"].startswith("2027-07-01T12:00:00")
    page = await visitor.get(f"/console/events/{event['id']}")
    assert "Open&#39;er &lt;Festival&gt;" in page.text  # escaped, not markup
    assert 'value="2027-07-04T23:30"' in page.text and "data-map" in page.text
    # A bad edit: the API's message, the form as sent.
    r = await visitor.post(f"/console/events/{event['id']}", {**form, "lat": "north"})
    assert r.status_code == 400 and 'value="north"' in r.text and visitor.alerts(r)
    for number in ("nan", "inf", "1e999"):  # no JSON number: the API names the field
        r = await visitor.post(f"/console/events/{event['id']}", {**form, "lng": number})
        assert r.status_code == 400 and visitor.alerts(r), number
    r = await visitor.post(
        f"/console/events/{event['id']}", {**form, "timeEnd": "2026-01-01T00:00"}
    )
    assert r.status_code == 400 and visitor.alerts(r)

    contact = {
        "eventId": str(event["id"]),
        "firstName": "Dora",
        "lastName": "Doctor",
        "email": "dora@example.org",
        "phoneNumber": "+48600700800",
        "additionalNotes": "",
    }
    r = await visitor.post("/console/contacts/new", contact)
    assert r.status_code == 303 and r.headers["location"] == f"/console/events/{event['id']}"
    page = await visitor.get(f"/console/events/{event['id']}")
    assert "Dora Doctor" in page.text and 'href="tel:+48600700800"' in page.text
    contact_id = re.search(r'href="/console/contacts/(\d+)"', page.text)
    assert contact_id
    r = await visitor.get(f"/console/contacts/{contact_id.group(1)}/delete")
    assert "Dora Doctor" in r.text
    r = await visitor.post(f"/console/contacts/{contact_id.group(1)}/delete", {})
    assert r.headers["location"] == f"/console/events/{event['id']}"
    assert "Dora Doctor" not in (await visitor.get(f"/console/events/{event['id']}")).text

    r = await visitor.post(f"/console/events/{event['id']}/delete", {})
    assert r.status_code == 303
    assert (await web_api.request("GET", "/agency/events", owner_token)).json() == []


async def test_profile_password_change_signs_out(visitor: Visitor, web_api: Api) -> None:
    _agency, email = await approved_owner(visitor, web_api)
    await visitor.sign_in(email, PASSWORD)
    r = await visitor.post(
        "/console/profile",
        {"firstName": "Olga", "lastName": "Nowak", "phoneNumber": "+48600700800"},
    )
    assert r.status_code == 303
    assert "Olga Nowak" in (await visitor.get("/console/profile")).text
    r = await visitor.post(
        "/console/profile/password",
        {"oldPassword": "wrong-wrong-wrong-wrong", "newPassword": "n" * 20,
         "confirmNewPassword": "n" * 20},
    )  # fmt: skip
    assert r.status_code == 400 and visitor.alerts(r)
    new = "a-new-long-password-2027"
    r = await visitor.post(
        "/console/profile/password",
        {"oldPassword": PASSWORD, "newPassword": new, "confirmNewPassword": new},
    )
    assert r.status_code == 303 and r.headers["location"] == "/console/sign-in"
    await visitor.sign_in(email, new)


async def test_the_owner_deletes_the_agency_only_by_typing_its_name(
    visitor: Visitor, web_api: Api
) -> None:
    agency_id, email = await approved_owner(visitor, web_api)
    await visitor.sign_in(email, PASSWORD)
    page = await visitor.get("/console/agency")
    name = re.search(r"<h1>(.*?)</h1>", page.text)
    assert name
    r = await visitor.post("/console/agency/delete", {"confirm": "not it"})
    assert r.status_code == 400
    r = await visitor.post("/console/agency/delete", {"confirm": name.group(1)})
    assert r.status_code == 303
    admin = await web_api.superadmin()
    r = await web_api.request("GET", f"/admin/agencies/{agency_id}", admin)
    assert r.status_code == 404


async def test_a_tampered_notice_is_not_shown(visitor: Visitor) -> None:
    visitor.client.cookies.set("aidpost_flash", "PHNjcmlwdD4.0000", path="/console")
    r = await visitor.get("/console/sign-in")
    assert "alert info" not in r.text


async def test_assets_are_ours_with_etags(visitor: Visitor) -> None:
    r = await visitor.get("/web/static/material.css")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/css")
    again = await visitor.client.get(
        "/web/static/material.css", headers={"If-None-Match": r.headers["etag"]}
    )
    assert again.status_code == 304
    for bad in ("../component.py", "nope.css", "component.py", ".hidden.js"):
        assert (await visitor.client.get(f"/web/static/{bad}")).status_code == 404


async def test_agency_websites_link_out_only_over_http(visitor: Visitor, web_api: Api) -> None:
    form = register_form(web_api, **{"agency.website": "agency.example.org"})
    assert (await visitor.post("/console/register", form)).status_code == 303
    await visitor.sign_in(*SUPERADMIN)
    page = await visitor.get("/console/admin/agencies")
    agency_id = re.findall(r'href="/console/admin/agencies/(\d+)"', page.text)[-1]
    page = await visitor.get(f"/console/admin/agencies/{agency_id}")
    assert 'href="https://agency.example.org"' in page.text


async def test_an_unreachable_api_gives_a_503_page(tmp_path: Any) -> None:
    from asgi_lifespan import LifespanManager

    from aidpost.app import create_app
    from aidpost.cluster import free_port
    from tests.conftest import make_settings, sqlite_databases

    closed = f"http://127.0.0.1:{free_port()}"
    settings = make_settings(
        sqlite_databases(tmp_path), tmp_path, web_api_url=closed, auth_url=closed
    )
    app = create_app(settings, ["web"])
    async with LifespanManager(app), client_for(app) as client:
        visitor = Visitor(client)
        await visitor.get("/console/sign-in")
        r = await visitor.post(
            "/console/sign-in", {"email": SUPERADMIN[0], "password": SUPERADMIN[1]}
        )
        assert r.status_code == 503 and "unavailable" in r.text
        visitor.client.cookies.set("aidpost_console", "organizer:x", path="/console")
        r = await visitor.get("/console/events")
        assert r.status_code == 503


async def test_issues_with_comments_and_their_changelog_diff(
    visitor: Visitor, web_api: Api
) -> None:
    _agency, email = await approved_owner(visitor, web_api)
    owner_token = await web_api.sign_in(email)
    event = await web_api.add_event(owner_token)
    await visitor.sign_in(email, PASSWORD)
    page = await visitor.get("/console/issues/new")
    assert f'<option value="{event["id"]}"' in page.text  # the agency's events to choose
    r = await visitor.post(
        "/console/issues/new",
        {"name": "Lost child at gate B", "eventId": str(event["id"]), "priority": "high",
         "description": "Seen near the food court."},
    )  # fmt: skip
    assert r.status_code == 303, r.text
    [issue] = (await web_api.request("GET", "/agency/issues", owner_token)).json()
    url = f"/console/issues/{issue['id']}"
    page = await visitor.get(url)
    assert "To do" in page.text and event["name"] in page.text
    edit = {"name": issue["name"], "priority": "high", "status": "resolved"}
    r = await visitor.post(url, {**edit, "description": issue["description"]})
    assert r.status_code == 303
    page = await visitor.get(url)
    assert "Resolved" in page.text and "closed" in page.text
    r = await visitor.post("/console/comments/new", {"issueId": str(issue["id"]),
                                                     "content": "Found, <b>safe</b>."})  # fmt: skip
    assert r.headers["location"] == url
    page = await visitor.get(url)
    assert "Found, &lt;b&gt;safe&lt;/b&gt;." in page.text and "/console/comments/" in page.text
    r = await visitor.post("/console/comments/new", {"issueId": str(issue["id"]), "content": ""})
    assert r.status_code == 400 and visitor.alerts(r)

    listing = await visitor.get("/console/changelogs")
    details = re.findall(r'href="/console/changelogs/(\d+)"', listing.text)
    assert details
    entries = (await web_api.request("GET", "/agency/changelogs", owner_token)).json()
    update = next(
        e for e in entries if e["entityClass"].lower() == "issue" and e["type"] == "update"
    )
    page = await visitor.get(f"/console/changelogs/{update['id']}")
    changed = re.findall(r'<tr class="changed">\s*<th scope="row">(\w+)', page.text)
    assert "status" in changed and "name" not in changed
    assert "to_do" in page.text and "resolved" in page.text
    r = await visitor.get("/console/changelogs?userId=abc")
    assert r.status_code == 400 and r.headers["content-type"].startswith("text/html")


async def test_only_the_superadmin_adds_administrators(visitor: Visitor, web_api: Api) -> None:
    await visitor.sign_in(*SUPERADMIN)
    page = await visitor.get("/console/admin/users")
    assert "Add administrator" in page.text
    admin = {k: str(v) for k, v in web_api.user_body(1).items()}
    r = await visitor.post("/console/admin/users/new", admin)
    assert r.status_code == 303, r.text
    assert admin["email"] in (await visitor.get("/console/admin/users")).text
    await visitor.post("/console/sign-out", {})
    await visitor.sign_in(admin["email"], PASSWORD)
    page = await visitor.get("/console/admin/users")
    assert page.status_code == 200 and "Add administrator" not in page.text
    r = await visitor.post("/console/admin/users/new", {**admin, "email": "second@example.org"})
    assert r.status_code in (400, 403) and visitor.alerts(r)
    page = await visitor.get("/console/admin/changelogs?agencyId=1")
    assert page.status_code == 200


async def test_live_support_is_for_agency_staff_and_hands_out_its_token_carefully(
    visitor: Visitor, web_api: Api
) -> None:
    await visitor.sign_in(*SUPERADMIN)
    r = await visitor.get("/console/live")
    assert r.status_code == 403 and "administrators cannot chat" in r.text
    await visitor.post("/console/sign-out", {})
    _agency, email = await approved_owner(visitor, web_api)
    await visitor.sign_in(email, PASSWORD)
    home = await visitor.get("/console")
    assert home.headers["location"] == "/console/live"
    page = await visitor.get("/console/live")
    assert page.status_code == 200 and 'src="/web/static/live.js"' in page.text
    csrf = re.search(r'data-csrf="([^"]+)"', page.text)
    assert csrf
    # Without the page's token, or from another site: no token.
    assert (await visitor.client.post("/console/live/token")).status_code == 403
    r = await visitor.client.post(
        "/console/live/token",
        headers={"X-CSRF-Token": csrf.group(1), "Sec-Fetch-Site": "cross-site"},
    )
    assert r.status_code == 403
    r = await visitor.client.post("/console/live/token", headers={"X-CSRF-Token": csrf.group(1)})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    assert r.json()["authorization"].startswith("Bearer organizer:")
    assert (await visitor.client.get("/console/live/token")).status_code == 404
    visitor.client.cookies.delete("aidpost_console", path="/console")
    r = await visitor.client.post("/console/live/token", headers={"X-CSRF-Token": csrf.group(1)})
    assert r.status_code == 303  # signed out: the script sends the browser to sign in


async def test_the_event_beside_a_chat_and_the_archives(visitor: Visitor, web_api: Api) -> None:
    _agency, email = await approved_owner(visitor, web_api)
    owner_token = await web_api.sign_in(email)
    event = await web_api.add_event(owner_token)
    await web_api.request("POST", "/agency/contacts", owner_token,
                          json=web_api.contact_body(event["id"]))  # fmt: skip
    await visitor.sign_in(email, PASSWORD)
    r = await visitor.get(f"/console/live/events/{event['id']}")
    assert r.status_code == 200 and r.json()["event"]["name"] == event["name"]
    assert r.json()["contacts"][0]["firstName"] == "Carl"
    assert (await visitor.get("/console/live/events/999999")).status_code == 404
    page = await visitor.get("/console/archives")
    assert page.status_code == 200 and "No ended chats yet." in page.text
    for bad in ("nope", "0" * 24, "g" * 24, "A" * 300):
        r = await visitor.get(f"/console/archives/{bad}")
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), bad


async def test_an_issue_from_a_chat_links_its_transcript(visitor: Visitor, web_api: Api) -> None:
    _agency, email = await approved_owner(visitor, web_api)
    event = await web_api.add_event(await web_api.sign_in(email))
    await visitor.sign_in(email, PASSWORD)
    chat = "0123456789abcdef01234567"
    page = await visitor.get(f"/console/issues/new?eventId={event['id']}&chatId={chat}")
    assert f'<option value="{event["id"]}" selected' in page.text
    assert f"/console/archives/{chat}" in page.text
    page = await visitor.get("/console/issues/new?eventId=x&chatId=<script>")
    assert page.status_code == 200 and "<script>" not in page.text.split("<main", 1)[1]
