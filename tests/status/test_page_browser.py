"""The public status page in a real browser: Debian's Chromium driven by Playwright, against
a real ``aidpost serve`` whose prober runs, with one open incident and one scheduled
maintenance made through the administration API.

JavaScript is off in every browser context: the page promises to need none. Playwright's
own ``evaluate`` still works there (it goes through the DevTools protocol, not the page),
which is how layout is measured. Full-page screenshots go to ``AIDPOST_SCREENSHOT_DIR`` when
it is set (``docs/screenshots`` keeps the published ones), else to the test's ``tmp_path``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, Response, expect

from tests.conftest import SUPERADMIN
from tests.contract.server import serve
from tests.web.browser import DESKTOP, PHONE

INCIDENT = {
    "name": "Slow sign-in",
    "status": "identified",
    "impact": "minor",
    "body": "We are adding capacity.",
    "components": [{"id": "sign-in", "status": "degraded_performance"}],
}
TRANSPARENT = ("rgba(0, 0, 0, 0)", "transparent")
T = TypeVar("T")


@dataclass
class Site:
    base: str
    admin: dict[str, str]  # the superadmin's Authorization header
    components: dict[str, str]  # id -> name, groups left out
    overall: dict[str, str]  # status.json's indicator and description
    mail: Path  # where the mailer writes each email as an .eml file


def _wait(what: str, ready: Callable[[], T | None], seconds: float = 20.0) -> T:
    """Poll ``ready()`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = ready()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    data = tmp_path_factory.mktemp("statuspage")
    env = {
        "AIDPOST_ENV": "test",
        "AIDPOST_MAILER_TRANSPORT_URL": "file:outgoing-mail",
        "AIDPOST_AUTH_SUPERADMIN_EMAIL": SUPERADMIN[0],
        "AIDPOST_AUTH_SUPERADMIN_PASSWORD": SUPERADMIN[1],
        "AIDPOST_RATE_LIMIT": "100000/minute",
    }
    with serve(data, env) as base, httpx.Client(base_url=base, timeout=10) as client:
        r = client.post(
            "/organizer-api/auth/sign-in",
            json={"email": SUPERADMIN[0], "password": SUPERADMIN[1]},
        )
        assert r.status_code == 200, r.text
        admin = {"Authorization": f"Bearer {r.json()['token']}"}
        # The status component learns its administrators from the bus.
        _wait(
            "the status component to know the superadmin",
            lambda: client.get("/statuspage-api/components", headers=admin).status_code == 200,
        )
        # Real check results for every component, so every bar and uptime has data, and at
        # least one successful check each: only those give the response-time chart a point
        # (a first check can time out on a busy machine).
        _wait(
            "a successful check for every component",
            lambda: all(
                c["uptime"]["24h"]
                for c in client.get("/statuspage/api/v2/uptime.json").json()["components"]
            ),
            seconds=60.0,
        )
        r = client.post("/statuspage-api/incidents", headers=admin, json=INCIDENT)
        assert r.status_code == 201, r.text
        start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=2)
        maintenance = {
            "name": "Database upgrade",
            "body": "PostgreSQL 17",
            "scheduled_for": start.isoformat(),
            "scheduled_until": (start + dt.timedelta(hours=1)).isoformat(),
            "components": ["mailer"],
        }
        r = client.post("/statuspage-api/maintenances", headers=admin, json=maintenance)
        assert r.status_code == 201, r.text
        listed = client.get("/statuspage/api/v2/components.json").json()["components"]
        overall = client.get("/statuspage/api/v2/status.json").json()["status"]
        assert overall["indicator"] == "minor", overall  # the degraded sign-in
        yield Site(
            base=base,
            admin=admin,
            components={c["id"]: c["name"] for c in listed if not c["group"]},
            overall=overall,
            mail=data / "outgoing-mail",
        )


@dataclass
class Visit:
    """A page in its own JavaScript-less context, and what went wrong while it loaded."""

    page: Page
    response: Response
    problems: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert self.problems == [], self.problems


async def visit(browser: Browser, url: str, **options: Any) -> Visit:
    context = await browser.new_context(java_script_enabled=False, **options)
    page = await context.new_page()
    problems: list[str] = []

    def on_console(msg: ConsoleMessage) -> None:
        # CSP violations arrive as console errors; say so even if one came as a warning.
        if msg.type == "error" or "Content Security Policy" in msg.text:
            problems.append(f"console {msg.type}: {msg.text} ({msg.location.get('url')})")

    def on_response(resp: Response) -> None:
        if resp.status >= 400:
            problems.append(f"{resp.status} for {resp.url}")

    page.on("console", on_console)
    page.on("response", on_response)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url}"))
    response = await page.goto(url, wait_until="load")
    assert response is not None
    return Visit(page, response, problems)


async def assert_status_page(v: Visit, site: Site) -> None:
    """What both viewports must show: status, incident, maintenance, every component."""
    page = v.page
    assert v.response.status == 200
    await expect(page.locator("h1")).to_have_text(site.overall["description"])
    overall = page.locator("section.overall")
    await expect(overall).to_have_class(f"overall indicator-{site.overall['indicator']}")
    incident = page.locator("article.incident", has_text="Slow sign-in")
    await expect(incident).to_be_visible()
    await expect(incident).to_contain_text("We are adding capacity.")
    await expect(incident).to_contain_text("Affects: Sign-in")
    upcoming = page.locator("section[aria-labelledby=upcoming-h]")
    await expect(upcoming.locator("article", has_text="Database upgrade")).to_be_visible()
    await expect(upcoming).to_contain_text("Affects: Emails")
    listed = page.locator("ul.components a.name")
    await expect(listed).to_have_text(list(site.components.values()))
    for name in site.components.values():
        await expect(listed.get_by_text(name, exact=True)).to_be_visible()
    sign_in = page.locator("li.component", has_text="Sign-in")
    await expect(sign_in.locator(".status")).to_have_text("Degraded performance")
    # The stylesheet applied: the banner is coloured and white on it.
    assert await overall.evaluate("e => getComputedStyle(e).backgroundColor") not in TRANSPARENT
    assert await overall.evaluate("e => getComputedStyle(e).color") == "rgb(255, 255, 255)"
    # Every day of the 90 has its bar, today's coloured from real check results.
    bars = sign_in.locator("svg.bars rect")
    await expect(bars).to_have_count(90)
    assert await bars.last.get_attribute("fill") != "#8c959f"  # the no-data grey
    v.assert_clean()


async def test_desktop_page(browser: Browser, site: Site, shots: Path) -> None:
    v = await visit(browser, site.base + "/statuspage", **DESKTOP)
    await assert_status_page(v, site)
    await v.page.screenshot(path=shots / "statuspage.png", full_page=True)

    # Keyboard first: the first Tab lands on the skip link, and it shows.
    skip = v.page.locator("a.skip")
    await expect(skip).not_to_be_in_viewport()
    await v.page.keyboard.press("Tab")
    await expect(skip).to_be_focused()
    await expect(skip).to_be_in_viewport()
    await expect(skip).to_have_attribute("href", "#main")
    v.assert_clean()


async def test_phone_page(browser: Browser, site: Site, shots: Path) -> None:
    v = await visit(browser, site.base + "/statuspage", **PHONE)
    await assert_status_page(v, site)
    # Not window.innerWidth: on a phone it grows to fit content wider than the screen.
    scroll, layout = await v.page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert layout == PHONE["viewport"]["width"]
    assert scroll <= layout, f"the page scrolls sideways: {scroll} px wide on a {layout} px screen"
    await v.page.screenshot(path=shots / "statuspage-phone.png", full_page=True)


async def test_component_page(browser: Browser, site: Site, shots: Path) -> None:
    v = await visit(browser, site.base + "/statuspage/components/sign-in", **DESKTOP)
    assert v.response.status == 200
    await expect(v.page.locator("h1")).to_have_text("Sign-in")
    await expect(v.page.locator("main .status")).to_have_text("Degraded performance")
    await expect(v.page.locator("svg.chart polyline")).to_have_count(1)
    for badge in await v.page.locator("img").all():
        # Loaded and decoded: an image the CSP or the server refused has no width.
        assert await badge.evaluate("e => e.complete && e.naturalWidth > 0")
    await v.page.screenshot(path=shots / "statuspage-component.png", full_page=True)
    v.assert_clean()


def _confirm_path(mail: Path, address: str) -> str | None:
    """The confirmation link's path in the email the mailer wrote for ``address``."""
    for eml in sorted(mail.glob("*.eml")):
        message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
        if message["To"] == address:
            body = message.get_body(("plain",))
            assert body is not None
            found = re.search(r"https?://[^/\s]+(/statuspage/confirm/\S+)", body.get_content())
            assert found, body.get_content()
            return found.group(1)
    return None


async def test_subscribe_form_without_javascript(browser: Browser, site: Site) -> None:
    v = await visit(browser, site.base + "/statuspage", **PHONE)
    address = "reader@example.com"
    await v.page.get_by_label("Email address").fill(address)
    await v.page.get_by_role("checkbox", name="Sign-in").check()
    async with v.page.expect_navigation() as sent:
        await v.page.get_by_role("button", name="Subscribe").click()
    answer = await sent.value
    assert answer is not None and answer.status == 202
    await expect(v.page.locator("h1")).to_have_text("Check your inbox")

    # Double opt-in: the link in the email, opened in the same browser, shows a button
    # (mail scanners follow links; people press buttons); pressing it confirms.
    link = await asyncio.to_thread(
        _wait, "the confirmation email", lambda: _confirm_path(site.mail, address)
    )
    opened = await v.page.goto(site.base + link)
    assert opened is not None and opened.status == 200
    await expect(v.page.locator("h1")).to_have_text("Confirm your subscription")
    async with v.page.expect_navigation() as pressed:
        await v.page.get_by_role("button", name="Confirm").click()
    confirmed = await pressed.value
    assert confirmed is not None and confirmed.status == 200
    await expect(v.page.locator("h1")).to_have_text("Subscribed")
    await expect(v.page.locator("main")).to_contain_text(f"{address} will hear about")
    v.assert_clean()

    async with httpx.AsyncClient(base_url=site.base) as client:
        r = await client.get("/statuspage-api/subscribers", headers=site.admin)
    assert r.status_code == 200, r.text
    (subscriber,) = [s for s in r.json() if s["email"] == address]
    assert subscriber["components"] == ["sign-in"]
    assert subscriber["confirmed_at"] is not None
