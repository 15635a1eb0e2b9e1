"""The organizer console in a real browser: Debian's Chromium driven by Playwright, against a
real ``aidpost serve``. One journey, entirely through the pages: an agency registers, its
owner is refused until the superadmin approves it, the owner adds a support user and an
event with a contact, and the support user reads the event but may not add one.

JavaScript is on (the event page's map picker is a script). Map tiles come from
tile.openstreetmap.org, which these machines cannot reach: every tile request is aborted
(``tests/web/browser.py``), and the page must fall back to showing the coordinates.
Full-page screenshots go to ``AIDPOST_SCREENSHOT_DIR`` when it is set (``docs/screenshots``
keeps the published ones), else to the test's ``tmp_path``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, Response, expect

from tests.conftest import SUPERADMIN
from tests.contract.server import serve
from tests.web.browser import (
    DESKTOP,
    PHONE,
    SESSION_COOKIE,
    Tab,
    goto,
    notice,
    open_tab,
    press,
    url,
)

AGENCY = {
    "name": "Riverside Rescue",
    "address": "1 River Street, Gdańsk",
    "website": "https://riverside-rescue.example.org",
}
OWNER = {
    "email": "owner@riverside-rescue.example.org",
    "firstName": "Olga",
    "lastName": "Owner",
    "phoneNumber": "+48 600 700 800",
    "password": "owner-password-of-riverside",  # organizer passwords: 16 to 128
}
SUPPORT = {
    "email": "support@riverside-rescue.example.org",
    "firstName": "Sam",
    "lastName": "Support",
    "phoneNumber": "+48 600 700 801",
    "password": "support-password-of-riverside",
}
EVENT = {
    "name": "Flood relief",
    "description": "Sandbags and shelter by the river.",
    "address": "2 River Street, Gdańsk",
    "lat": "54.352",
    "lng": "18.6466",
    "start": "2027-06-01T10:00",
    "end": "2027-06-01T18:00",
}
CONTACT = {
    "firstName": "Clara",
    "lastName": "Contact",
    "email": "clara@riverside-rescue.example.org",
    "phoneNumber": "+48 600 700 802",
    "notes": "Night shift lead",
}


@dataclass
class Site:
    base: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    data = tmp_path_factory.mktemp("console")
    env = {
        "AIDPOST_ENV": "test",
        "AIDPOST_MAILER_TRANSPORT_URL": "file:outgoing-mail",
        "AIDPOST_AUTH_SUPERADMIN_EMAIL": SUPERADMIN[0],
        "AIDPOST_AUTH_SUPERADMIN_PASSWORD": SUPERADMIN[1],
        "AIDPOST_RATE_LIMIT": "100000/minute",
    }
    with serve(data, env) as base:
        yield Site(base=base)


async def sign_in(tab: Tab, email: str, password: str) -> Response:
    await goto(tab, "/console/sign-in")
    await tab.page.get_by_label("Email").fill(email)
    await tab.page.get_by_label("Password").fill(password)
    return await press(tab, "Sign in")


async def sign_out(tab: Tab) -> None:
    answer = await press(tab, "Sign out")
    assert answer.status == 200
    await expect(tab.page).to_have_url(url(tab, "/console/sign-in"))
    await notice(tab, "You are signed out.")
    assert await tab.session_cookie() is None


async def register_agency(tab: Tab, shots: Path) -> None:
    page = tab.page
    answer = await goto(tab, "/console/register")
    assert answer.status == 200
    await expect(page.locator("h1")).to_have_text("Register an agency")
    agency = page.get_by_role("group", name="The agency")
    await agency.get_by_label("Agency name").fill(AGENCY["name"])
    await agency.get_by_label("Address").fill(AGENCY["address"])
    await agency.get_by_label("Website").fill(AGENCY["website"])
    owner = page.get_by_role("group", name="You, its owner")
    await owner.get_by_label("Email").fill(OWNER["email"])
    await owner.get_by_label("First name").fill(OWNER["firstName"])
    await owner.get_by_label("Last name").fill(OWNER["lastName"])
    await owner.get_by_label("Phone number").fill(OWNER["phoneNumber"])
    await owner.get_by_label("Password", exact=True).fill(OWNER["password"])
    await owner.get_by_label("Repeat the password").fill(OWNER["password"])
    # The labels are tied to the names the console posts.
    for name, value in {
        "agency.name": AGENCY["name"],
        "agency.address": AGENCY["address"],
        "agency.website": AGENCY["website"],
        "owner.email": OWNER["email"],
        "owner.firstName": OWNER["firstName"],
        "owner.lastName": OWNER["lastName"],
        "owner.phoneNumber": OWNER["phoneNumber"],
        "owner.password": OWNER["password"],
        "owner.confirmPassword": OWNER["password"],
    }.items():
        await expect(page.locator(f'[name="{name}"]')).to_have_value(value)
    await page.screenshot(path=shots / "console-register.png", full_page=True)

    answer = await press(tab, "Register")
    assert answer.status == 200
    await expect(page).to_have_url(url(tab, "/console/sign-in"))
    await notice(
        tab, "Your agency is registered. You can sign in once an administrator approves it."
    )


async def owner_refused_before_approval(tab: Tab) -> None:
    tab.refusal("/console/sign-in", 400)
    answer = await sign_in(tab, OWNER["email"], OWNER["password"])
    assert answer.status == 400
    await expect(tab.page).to_have_url(url(tab, "/console/sign-in"))
    await expect(tab.page.locator("h1")).to_have_text("Sign in")
    await expect(tab.page.get_by_role("alert")).to_have_text(
        "your agency is not approved by administrators"
    )
    # The email stays filled in, the password does not.
    await expect(tab.page.get_by_label("Email")).to_have_value(OWNER["email"])
    await expect(tab.page.get_by_label("Password")).to_have_value("")
    assert await tab.session_cookie() is None


async def superadmin_approves(tab: Tab, shots: Path) -> None:
    page = tab.page
    answer = await sign_in(tab, *SUPERADMIN)
    assert answer.status == 200
    await expect(page).to_have_url(url(tab, "/console/admin/agencies"))
    await expect(page.locator("h1")).to_have_text("Agencies")
    row = page.get_by_role("row").filter(has_text=AGENCY["name"])
    await expect(row).to_have_count(1)
    await expect(row.locator(".chip")).to_have_text("Waiting")
    await expect(page.locator("p.lead")).to_have_text("1 waiting for approval.")
    await page.screenshot(path=shots / "console-agencies.png", full_page=True)

    await row.get_by_role("link", name=AGENCY["name"]).click()
    await expect(page).to_have_url(url(tab, r"/console/admin/agencies/\d+"))
    await expect(page.locator("h1")).to_have_text(AGENCY["name"])
    await expect(page.locator(".facts")).to_contain_text("Waiting for approval")
    answer = await press(tab, "Approve")
    assert answer.status == 200
    await notice(tab, "The agency is approved.")
    await expect(page.locator(".facts .chip")).to_have_text("Approved")
    await expect(page.get_by_role("button", name="Revoke approval")).to_be_visible()
    await sign_out(tab)


async def owner_adds_support_user(tab: Tab, shots: Path) -> None:
    page = tab.page
    answer = await sign_in(tab, OWNER["email"], OWNER["password"])
    assert answer.status == 200
    await expect(page).to_have_url(url(tab, "/console/live"))  # agency staff start there
    await expect(page.locator("#conn")).to_have_text("Connected")
    await expect(page.locator(".who")).to_contain_text("Olga Owner · Agency owner")

    # The session lives in an HttpOnly cookie scoped to the console: no script reads it.
    cookie = await tab.session_cookie()
    assert cookie is not None
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["path"] == "/console"
    assert SESSION_COOKIE not in await page.evaluate("document.cookie")

    # The agency's own page: the owner edits what was registered.
    nav = page.get_by_role("navigation", name="Console")
    await nav.get_by_role("link", name="Agency", exact=True).click()
    await expect(page).to_have_url(url(tab, "/console/agency"))
    await expect(page.locator("h1")).to_have_text(AGENCY["name"])
    await expect(page.get_by_label("Website")).to_have_value(AGENCY["website"])

    await nav.get_by_role("link", name="Users", exact=True).click()
    await expect(page).to_have_url(url(tab, "/console/users"))
    await expect(page.get_by_role("row").filter(has_text=OWNER["email"])).to_contain_text(
        "Agency owner"
    )
    await page.get_by_role("link", name="Add user").click()
    await expect(page).to_have_url(url(tab, "/console/users/new"))
    await expect(page.locator("h1")).to_have_text("New user")
    # The seniority rule: an owner gives only roles junior to their own.
    role = page.get_by_label("Role")
    await expect(role.locator("option")).to_have_text(["Agency manager", "Agency support"])
    await page.get_by_label("Email").fill(SUPPORT["email"])
    await page.get_by_label("First name").fill(SUPPORT["firstName"])
    await page.get_by_label("Last name").fill(SUPPORT["lastName"])
    await page.get_by_label("Phone number").fill(SUPPORT["phoneNumber"])
    await role.select_option(label="Agency support")
    await page.get_by_label("Password", exact=True).fill(SUPPORT["password"])
    await page.get_by_label("Repeat the password").fill(SUPPORT["password"])
    answer = await press(tab, "Add user")
    assert answer.status == 200
    await expect(page).to_have_url(url(tab, "/console/users"))
    await notice(tab, "The user is saved.")
    row = page.get_by_role("row").filter(has_text=SUPPORT["email"])
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("Sam Support")
    await expect(row).to_contain_text(SUPPORT["phoneNumber"])
    await expect(row).to_contain_text("Agency support")
    await page.screenshot(path=shots / "console-users.png", full_page=True)


async def owner_adds_event_and_contact(tab: Tab, shots: Path) -> None:
    page = tab.page
    nav = page.get_by_role("navigation", name="Console")
    await nav.get_by_role("link", name="Events", exact=True).click()
    await expect(page).to_have_url(url(tab, "/console/events"))
    await page.get_by_role("link", name="Add event").click()
    await expect(page).to_have_url(url(tab, "/console/events/new"))
    await expect(page.locator("h1")).to_have_text("New event")

    # The map picker: the script mounted it and asked for tiles, which all fail, so the
    # map steps aside and the coordinates stay in words.
    picker = page.locator("[data-map]")
    await expect(picker.locator(".map")).to_have_count(1)
    await expect(picker.locator(".map")).to_have_class(re.compile(r"\bfailed\b"))
    assert tab.tiles, "the map asked for no tile"
    fallback = picker.locator(".map-fallback")
    await expect(fallback).to_be_visible()
    await expect(fallback).to_contain_text("Location:")

    await page.get_by_label("Name", exact=True).fill(EVENT["name"])
    await page.get_by_label("Description").fill(EVENT["description"])
    await page.get_by_label("Address").fill(EVENT["address"])
    await page.get_by_label("Latitude").fill(EVENT["lat"])
    await page.get_by_label("Longitude").fill(EVENT["lng"])
    await page.get_by_label("Starts (UTC)").fill(EVENT["start"])
    await page.get_by_label("Ends (UTC)").fill(EVENT["end"])
    await page.get_by_label("Name", exact=True).focus()  # the coordinates' change events
    await expect(fallback).to_be_visible()
    answer = await press(tab, "Add event")
    assert answer.status == 200
    # A new record leads back to its list (resources.Resource.back); the list shows the
    # event in people's time format, and its name opens the event's own page.
    await expect(page).to_have_url(url(tab, "/console/events"))
    await notice(tab, "The event is saved.")
    row = page.get_by_role("row").filter(has_text=EVENT["name"])
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text(EVENT["address"])
    await expect(row).to_contain_text("2027-06-01 10:00 UTC")
    await expect(row).to_contain_text("2027-06-01 18:00 UTC")
    await row.get_by_role("link", name=EVENT["name"]).click()
    await expect(page).to_have_url(url(tab, r"/console/events/\d+"))
    event_path = page.url.removeprefix(tab.base)
    await expect(page.locator("h1")).to_have_text(EVENT["name"])
    await expect(page.get_by_label("Latitude")).to_have_value(EVENT["lat"])
    await expect(page.get_by_label("Starts (UTC)")).to_have_value(EVENT["start"])
    await expect(page.get_by_label("Ends (UTC)")).to_have_value(EVENT["end"])
    await expect(fallback).to_be_visible()
    await expect(fallback).to_contain_text(f"Location: {float(EVENT['lat'])}")
    await expect(fallback.get_by_role("link", name="open the map")).to_be_visible()
    await expect(picker.locator(".map .pin")).to_have_count(1)  # drawn, if out of sight
    contacts = page.locator("section", has=page.get_by_role("heading", name="Emergency contacts"))
    await expect(contacts).to_be_visible()
    await expect(contacts).to_contain_text("No contacts yet.")

    await contacts.get_by_role("link", name="Add contact").click()
    await expect(page).to_have_url(re.compile(r"/console/contacts/new\?eventId=\d+$"))
    await expect(page.locator("h1")).to_have_text("New contact")
    await page.get_by_label("First name").fill(CONTACT["firstName"])
    await page.get_by_label("Last name").fill(CONTACT["lastName"])
    await page.get_by_label("Email").fill(CONTACT["email"])
    await page.get_by_label("Phone number").fill(CONTACT["phoneNumber"])
    await page.get_by_label("Notes").fill(CONTACT["notes"])
    answer = await press(tab, "Add contact")
    assert answer.status == 200
    await expect(page).to_have_url(url(tab, re.escape(event_path)))
    await notice(tab, "The contact is saved.")
    row = contacts.get_by_role("row").filter(has_text=CONTACT["email"])
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("Clara Contact")
    await expect(row).to_contain_text(CONTACT["phoneNumber"])
    await expect(row).to_contain_text(CONTACT["notes"])
    await page.screenshot(path=shots / "console-event.png", full_page=True)
    await sign_out(tab)


async def support_reads_only(tab: Tab) -> None:
    page = tab.page
    answer = await sign_in(tab, SUPPORT["email"], SUPPORT["password"])
    assert answer.status == 200
    await expect(page).to_have_url(url(tab, "/console/live"))
    await expect(page.locator("#conn")).to_have_text("Connected")  # loaded, nothing in flight
    await page.get_by_role("navigation", name="Console").get_by_role("link", name="Events").click()
    await expect(page).to_have_url(url(tab, "/console/events"))
    await expect(page.locator(".who")).to_contain_text("Sam Support · Agency support")
    await expect(page.locator("h1")).to_have_text("Events")
    await expect(page.get_by_role("row").filter(has_text=EVENT["name"])).to_have_count(1)
    await expect(page.get_by_role("link", name="Add event")).to_have_count(0)

    # The event reads as facts, with no form, no contact to add, and the contact listed.
    await page.get_by_role("link", name=EVENT["name"]).click()
    await expect(page.locator("h1")).to_have_text(EVENT["name"])
    await expect(page.locator("main form")).to_have_count(0)
    await expect(page.locator(".facts")).to_contain_text(EVENT["description"])
    await expect(page.get_by_role("link", name="Add contact")).to_have_count(0)
    await expect(page.get_by_role("row").filter(has_text=CONTACT["email"])).to_have_count(1)
    # The read-only map pins the event too (no inputs to read: the box carries it).
    await expect(page.locator("[data-map] .map-fallback")).to_be_visible()
    await expect(page.locator("[data-map] .map .pin")).to_have_count(1)
    await sign_out(tab)


async def test_console_journey(browser: Browser, site: Site, shots: Path) -> None:
    tab = await open_tab(browser, site.base, **DESKTOP)
    await register_agency(tab, shots)
    await owner_refused_before_approval(tab)
    await superadmin_approves(tab, shots)
    await owner_adds_support_user(tab, shots)
    await owner_adds_event_and_contact(tab, shots)
    await support_reads_only(tab)
    # Pages, the redirects between them and the refused sign-in: each kind was checked.
    assert {answer.status for answer in tab.pages} == {200, 303, 400}
    tab.assert_clean()
    await tab.context.close()


async def test_sign_in_on_phone(browser: Browser, site: Site, shots: Path) -> None:
    tab = await open_tab(browser, site.base, **PHONE)
    answer = await goto(tab, "/console/sign-in")
    assert answer.status == 200
    await expect(tab.page.locator("h1")).to_have_text("Sign in")
    await expect(tab.page.get_by_role("link", name="Register it")).to_be_visible()
    # Not window.innerWidth: on a phone it grows to fit content wider than the screen.
    scroll, layout = await tab.page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert layout == PHONE["viewport"]["width"]
    assert scroll <= layout, f"the page scrolls sideways: {scroll} px wide on a {layout} px screen"
    await tab.page.screenshot(path=shots / "console-sign-in-phone.png", full_page=True)
    tab.assert_clean()
    await tab.context.close()
