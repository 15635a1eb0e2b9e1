"""What the browser tests share: Debian's Chromium driven by Playwright (async API) against
a real ``aidpost serve``, a page per context that records what went wrong in it, and the
small steps every journey takes.

Map tiles come from tile.openstreetmap.org, which these machines cannot reach: a tab's tile
requests are aborted and the pages must fall back to showing coordinates. Full-page
screenshots go to ``AIDPOST_SCREENSHOT_DIR`` when it is set (``docs/screenshots`` keeps
the published ones), else to the test's ``tmp_path``.

The fixtures (``chromium``, ``browser``, ``shots``, ``patient_expect``) reach the tests
through ``tests/web/conftest.py``.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    Response,
    Route,
    WebSocket,
    async_playwright,
    expect,
)

from tests.conftest import ON_CI

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 900}}
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
    "device_scale_factor": 2,
}
TILES = "https://tile.openstreetmap.org/"
SESSION_COOKIE = "aidpost_console"
WAIT_MS = 15_000  # a CI run may share the CPU: generous, never needed when all is well
WAIT_S = WAIT_MS / 1000
OFFLINE = "ERR_INTERNET_DISCONNECTED"  # Chromium's failure for a request made offline

# A page's chat sockets are wrapped so that a test can drop them the way a lost network
# would: Chromium's offline emulation (context.set_offline) fails new requests and fires
# "offline", but leaves an established WebSocket open and delivering. The page's code is
# untouched; ``window.__sockets`` only keeps each socket it opens.
KEEP_SOCKETS = """
(() => {
  const Native = window.WebSocket;
  window.__sockets = [];
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      window.__sockets.push(this);
    }
  };
})();
"""


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def chromium() -> Path:
    """Debian's Chromium; Playwright downloads no browser of its own here."""
    if not CHROMIUM.exists():
        if ON_CI:
            pytest.fail(f"{CHROMIUM} is missing on CI: .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=str(chromium), headless=True, args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("AIDPOST_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def patient_expect() -> Iterator[None]:
    """``expect`` waits up to WAIT_MS (use with ``pytest.mark.usefixtures``)."""
    expect.set_options(timeout=WAIT_MS)
    yield
    expect.set_options(timeout=None)  # back to Playwright's default for other modules


# -- a tab: one page in its own context --------------------------------------------------------


@dataclass
class Tab:
    """A page in its own context (JavaScript on), and what went wrong in it so far."""

    context: BrowserContext
    page: Page
    base: str
    problems: list[str] = field(default_factory=list)
    pages: list[Response] = field(default_factory=list)  # every document answer, redirects too
    tiles: list[str] = field(default_factory=list)  # tile requests, each aborted
    refusals: set[tuple[str, int]] = field(default_factory=set)  # pages meant to say no
    sockets: list[WebSocket] = field(default_factory=list)
    # While ``offline`` (the test cut the network), requests to ``offline_urls`` may fail
    # with OFFLINE: they are kept in ``offline_failures`` instead of ``problems``.
    offline: bool = False
    offline_urls: set[str] = field(default_factory=set)
    offline_failures: list[str] = field(default_factory=list)
    layout: list[str] = field(default_factory=list)  # see check_layout
    # Navigations of the page started so far, and that count when each request began: a
    # request the browser aborts because the page navigated away is not a problem.
    navigations: int = 0
    began: dict[Request, int] = field(default_factory=dict)

    def refusal(self, path: str, status: int) -> None:
        """The page at ``path`` is about to answer ``status`` on purpose (a form refused)."""
        self.refusals.add((self.base + path, status))

    async def set_offline(self, offline: bool) -> None:
        if offline:
            self.offline = True
        await self.context.set_offline(offline)
        if not offline:
            self.offline = False

    def expected_offline(self, url: str, failure: str) -> bool:
        return self.offline and url in self.offline_urls and OFFLINE in failure

    async def check_layout(self, when: str) -> None:
        """What the page hid (the ``hidden`` attribute) is not drawn, and the page does not
        scroll sideways. Collected, and asserted by ``assert_layout`` (or
        ``assert_clean``), so that one style mistake does not stop a journey at its first
        symptom."""
        drawn = await self.page.evaluate(
            """[...document.querySelectorAll("[hidden]")]
                .filter((e) => e.getClientRects().length > 0)
                .map((e) => e.id ? `#${e.id}` : `${e.tagName.toLowerCase()}.${e.className}`)"""
        )
        self.layout += [f"{when}: {what} is drawn despite its hidden attribute" for what in drawn]
        # Not window.innerWidth, which grows to fit content wider than the screen.
        scroll, width = await self.page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        if scroll > width:
            self.layout.append(f"{when}: the page scrolls sideways ({scroll} px in {width} px)")

    def assert_layout(self) -> None:
        assert self.layout == [], self.layout

    def assert_clean(self) -> None:
        self.assert_layout()
        assert self.problems == [], self.problems
        for answer in self.pages:
            assert answer.headers.get("content-security-policy"), f"no CSP on {answer.url}"
            if (answer.url, answer.status) not in self.refusals:
                assert answer.status in (200, 303), (answer.status, answer.url)

    async def session_cookie(self, name: str = SESSION_COOKIE) -> dict[str, Any] | None:
        found = [c for c in await self.context.cookies() if c["name"] == name]
        return dict(found[0]) if found else None


def _is_tile(url: str | None) -> bool:
    return bool(url) and str(url).startswith(TILES)


async def open_tab(
    browser: Browser,
    base: str,
    *,
    keep_sockets: bool = False,
    offline_urls: Iterable[str] = (),
    **options: Any,
) -> Tab:
    """A new context with one page; ``options`` go to ``browser.new_context``.
    ``keep_sockets`` adds KEEP_SOCKETS; ``offline_urls`` are paths (see ``Tab``)."""
    context = await browser.new_context(**options)
    if keep_sockets:
        await context.add_init_script(KEEP_SOCKETS)
    page = await context.new_page()
    tab = Tab(context, page, base, offline_urls={base + path for path in offline_urls})

    async def no_tiles(route: Route) -> None:
        # tile.openstreetmap.org is out of reach here; fail fast as a blocked network would.
        tab.tiles.append(route.request.url)
        await route.abort()

    def on_console(msg: ConsoleMessage) -> None:
        where = msg.location.get("url") or ""
        if _is_tile(where):
            return  # the aborted tiles' "Failed to load resource"
        if any(where == at and f"status of {code} " in msg.text for at, code in tab.refusals):
            return  # Chromium's note on a page answered 4xx on purpose
        if tab.expected_offline(where, msg.text):
            tab.offline_failures.append(msg.text)  # e.g. a reconnection attempt while offline
            return
        # CSP violations arrive as console errors; say so even if one came as a warning.
        if msg.type == "error" or "Content Security Policy" in msg.text:
            tab.problems.append(f"console {msg.type}: {msg.text} ({where})")

    def on_response(resp: Response) -> None:
        if resp.request.resource_type == "document":
            tab.pages.append(resp)  # statuses are checked where each page is asked for
        elif resp.status >= 400:
            tab.problems.append(f"{resp.status} for {resp.url}")

    def on_failed(req: Request) -> None:
        if _is_tile(req.url):
            return
        began = tab.began.pop(req, tab.navigations)
        if req.failure == "net::ERR_ABORTED" and (
            tab.navigations > began or req.resource_type in ("image", "other")
        ):
            # The browser cancelled it: the page navigated away meanwhile (a fetch of the
            # live connection's token, say), or an icon's load was dropped. A server
            # refusing it would show as a status or as another network error.
            return
        if tab.expected_offline(req.url, req.failure or ""):
            tab.offline_failures.append(f"{req.url} {req.failure}")
            return
        tab.problems.append(f"request failed: {req.url} {req.failure}")

    await context.route(re.compile("^" + re.escape(TILES)), no_tiles)
    page.on("console", on_console)
    page.on("response", on_response)
    page.on("pageerror", lambda exc: tab.problems.append(f"page error: {exc}"))

    def on_request(req: Request) -> None:
        if req.resource_type == "document" and req.frame == page.main_frame:
            tab.navigations += 1
        else:
            tab.began[req] = tab.navigations

    page.on("request", on_request)
    page.on("requestfinished", lambda req: tab.began.pop(req, None))
    page.on("requestfailed", on_failed)
    page.on("websocket", lambda ws: tab.sockets.append(ws))
    return tab


# -- steps -------------------------------------------------------------------------------------


def url(tab: Tab, path: str) -> re.Pattern[str]:
    """The tab's address is exactly ``path`` (a regular expression), no query string."""
    return re.compile("^" + re.escape(tab.base) + path + "$")


async def goto(tab: Tab, path: str) -> Response:
    answer = await tab.page.goto(tab.base + path, wait_until="load")
    assert answer is not None
    return answer


async def press(tab: Tab, button: str) -> Response:
    """Click a form's submit button and wait for the page it leads to (after redirects)."""
    async with tab.page.expect_navigation(wait_until="load") as navigation:
        await tab.page.get_by_role("button", name=button, exact=True).click()
    answer = await navigation.value
    assert answer is not None
    return answer


async def notice(tab: Tab, text: str) -> None:
    await expect(tab.page.get_by_role("status")).to_have_text(text)
