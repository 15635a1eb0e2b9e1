"""Live support in a real browser: Debian's Chromium driven by Playwright against a real
``aidpost serve --demo``, the participant played from Python over the participant API and
the messenger protocol (``tests/messenger/client.py``), through the same server.

One journey: the demo participant asks for help; the demo support user signs in, lands on
live support, sees one request waiting and takes it with the accept-new-chats switch; the
two talk (the participant moves, the map's coordinates follow); the page loses its network
and its socket, the participant writes meanwhile, and the page, back online, reconnects by
itself and shows what it missed once each, in order; a second participant's chat raises
the title's unread badge while the first stays open; staff closes the chat, finds it in
the archives and starts an issue from it.

Map tiles (tile.openstreetmap.org, out of reach here) are aborted as in every browser
test (``tests/web/browser.py``, which also wraps the page's sockets); screenshots go to
``AIDPOST_SCREENSHOT_DIR`` when it is set, else to the test's ``tmp_path``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Dialog, expect

from tests.contract.server import serve
from tests.messenger.client import Client
from tests.web.browser import DESKTOP, WAIT_S, Tab, open_tab, url

pytestmark = pytest.mark.usefixtures("patient_expect")

DEMO_PASSWORD = "demo-password-1234"
SUPPORT = "support@demo.aidpost.example"
PARTICIPANT = "participant@demo.aidpost.example"
OTHER = {  # a second participant, signed up for the title badge
    "email": "second@live-browser.example",
    "password": "second-participant-pw",
    "confirmPassword": "second-participant-pw",
}
EVENT_NAME = "Demo Summer Festival"  # src/aidpost/demo.py
TITLE = "Live support · aidpost console"

DESCRIPTION = "My friend fainted near stage A"
START = (52.2297713, 21.0117842)  # shown with 5 decimals: 52.22977, 21.01178
MOVED = (52.2310461, 21.0060019)  # 52.23105, 21.00600
MOVED_TEXT = "We carried her to the first-aid tent"
REPLY = "A medic is on the way to the tent"
WHILE_OFFLINE = ["She is awake now", "We are by the tent's north door"]


def fmt(where: tuple[float, float]) -> str:
    return f"{where[0]:.5f}, {where[1]:.5f}"


# -- the server and the participants (Python) -------------------------------------------------


@dataclass
class Site:
    base: str


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    env = {
        "AIDPOST_ENV": "test",
        "AIDPOST_MAILER_TRANSPORT_URL": "file:outgoing-mail",
        "AIDPOST_RATE_LIMIT": "100000/minute",
    }
    data = tmp_path / "server"
    data.mkdir()
    with serve(data, env, "--demo") as base:
        yield Site(base=base)


class Participant:
    """A participant as their app: the participant API over HTTP, chats over the socket."""

    def __init__(self, http: httpx.AsyncClient, token: str) -> None:
        self.http = http
        self.token = token
        self.client: Client | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def request_help(self, description: str, where: tuple[float, float]) -> dict[str, Any]:
        """As ``World.request_help`` in ``tests/messenger/test_chat_flow.py``."""
        events: list[dict[str, Any]] = []
        for _ in range(400):  # the events read model fills through the bus
            events = (await self.http.get("/participant-api/events", headers=self.headers)).json()
            if events:
                break
            await asyncio.sleep(0.05)
        assert [e["name"] for e in events] == [EVENT_NAME]
        body = {
            "eventId": events[0]["id"],
            "description": description,
            "lat": where[0],
            "lng": where[1],
        }
        r = await self.http.post("/participant-api/chat-requests", json=body, headers=self.headers)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "waiting"
        result: dict[str, Any] = r.json()
        return result

    async def connect(self, base: str) -> str:
        """Open the messenger socket; the id of the one open chat."""
        self.client = await Client.connect(base, self.token)
        chats = (await self.client.next("chats", within=WAIT_S))["payload"]["chats"]
        assert len(chats) == 1, chats
        chat_id: str = chats[0]["id"]
        return chat_id

    async def say(
        self, chat_id: str, text: str, where: tuple[float, float] | None = None
    ) -> dict[str, Any]:
        """Send a message and wait for the server's echo: it is stored and published."""
        assert self.client is not None
        payload: dict[str, Any] = {"chatId": chat_id, "message": text}
        if where is not None:
            payload |= {"lat": where[0], "lng": where[1]}
        await self.client.send("send_message", payload)
        echo: dict[str, Any] = (await self.client.next("user_message", within=WAIT_S))["payload"]
        assert (echo["content"], echo["fromOrganizer"]) == (text, 0)
        return echo


async def sign_in_participant(http: httpx.AsyncClient, email: str, password: str) -> Participant:
    r = await http.post(
        "/participant-api/auth/sign-in", json={"email": email, "password": password}
    )
    assert r.status_code == 200, r.text
    return Participant(http, r.json()["token"])


async def sign_up_participant(http: httpx.AsyncClient) -> Participant:
    r = await http.post("/participant-api/auth/sign-up", json=OTHER)
    assert r.status_code == 201, r.text
    return Participant(http, r.json()["token"])


# -- the journey -------------------------------------------------------------------------------


async def sign_in_and_take_the_request(tab: Tab) -> None:
    page = tab.page
    await page.goto(tab.base + "/console/sign-in", wait_until="load")
    await page.get_by_label("Email").fill(SUPPORT)
    await page.get_by_label("Password").fill(DEMO_PASSWORD)
    async with page.expect_navigation(wait_until="load"):
        await page.get_by_role("button", name="Sign in", exact=True).click()
    # Agency staff land on live support (console.home).
    await expect(page).to_have_url(url(tab, "/console/live"))
    await expect(page).to_have_title(TITLE)
    await expect(page.locator("#conn")).to_have_text("Connected")
    await expect(page.locator("#waiting")).to_have_text("1")
    await expect(page.locator("#no-chats")).to_be_visible()
    await expect(page.locator("#details")).to_be_hidden()
    await tab.check_layout("before any chat is open")  # no message box yet, say

    switch = page.get_by_role("switch", name="Accept new chats")
    await expect(switch).not_to_be_checked()
    # A click on its label, as a person's (the invisible input lies under the drawn track,
    # which takes the pointer), not check(): the switch turns itself off once the chat
    # arrives, which may be before check() looks at it again.
    await page.locator("label", has=switch).click()
    chats = page.locator("#chats li")
    await expect(chats).to_have_count(1)
    await expect(chats).to_have_text(PARTICIPANT)
    await expect(switch).not_to_be_checked()  # one new chat, then off (ESME's switch)
    await expect(page.locator("#waiting")).to_have_text("0")
    await expect(page.locator("#no-chats")).to_be_hidden()

    # The new chat opened by itself.
    await expect(chats.get_by_role("button")).to_have_attribute("aria-current", "true")
    await expect(page.locator("#conv-title")).to_have_text(f"Chat with {PARTICIPANT}")
    await expect(page.locator("#messages li .text")).to_have_text(
        [f"Problem description: {DESCRIPTION}"]
    )
    await expect(page.locator("#messages li.theirs")).to_have_count(1)
    details = page.locator("#details")
    await expect(details).to_be_visible()
    await expect(page.locator("#participant")).to_contain_text(PARTICIPANT)
    await expect(page.locator("#coords")).to_contain_text(fmt(START))
    await expect(page.locator("#event .event-name")).to_have_text(EVENT_NAME)
    await expect(page.get_by_role("button", name="Close chat")).to_be_visible()
    await expect(page.get_by_label("Message", exact=True)).to_be_focused()


async def talk(tab: Tab, someone: Participant, chat_id: str, shots: Path) -> None:
    page = tab.page
    assert someone.client is not None
    # The issue link beside the conversation names this chat and its event.
    href = await page.locator("#new-issue").get_attribute("href")
    assert href is not None and href.endswith(f"&chatId={chat_id}"), href

    moved = await someone.say(chat_id, MOVED_TEXT, MOVED)
    assert (moved["lat"], moved["lng"]) == MOVED
    texts = page.locator("#messages li .text")
    await expect(texts).to_have_text([f"Problem description: {DESCRIPTION}", MOVED_TEXT])
    await expect(page.locator("#coords")).to_contain_text(fmt(MOVED))
    await expect(page.locator("#coords")).not_to_contain_text(fmt(START))
    await expect(page).to_have_title(TITLE)  # the open chat, in sight: nothing unread

    box = page.get_by_label("Message", exact=True)
    await box.fill(REPLY)
    await box.press("Enter")
    await expect(box).to_have_value("")
    got = (await someone.client.next("user_message", within=WAIT_S))["payload"]
    assert (got["content"], got["fromOrganizer"], got["chatId"]) == (REPLY, 1, chat_id)
    await expect(texts).to_have_text([f"Problem description: {DESCRIPTION}", MOVED_TEXT, REPLY])
    await expect(page.locator("#messages li.mine")).to_have_count(1)
    await expect(page.locator("#messages li.pending")).to_have_count(0)  # acknowledged
    await expect(page.locator("#coords")).to_contain_text(fmt(MOVED))  # staff has no location
    await tab.check_layout("mid-conversation")  # a long email beside the chat, say
    await page.screenshot(path=shots / "console-live.png", full_page=True)


async def reconnects_after_network_loss(tab: Tab, someone: Participant, chat_id: str) -> None:
    page = tab.page
    conn = page.locator("#conn")
    texts = page.locator("#messages li .text")
    before = [f"Problem description: {DESCRIPTION}", MOVED_TEXT, REPLY]
    assert len(tab.sockets) == 1

    # Chromium's offline emulation (context.set_offline) fails new requests and fires
    # "offline", but leaves an established WebSocket open and delivering: the page would
    # never notice. So the test cuts the network and also drops the chat's socket from the
    # page (the wrapped constructor keeps it), which is what the page sees when a real
    # network goes: a close event while navigator.onLine is false. Reconnection attempts
    # meanwhile fail at the token fetch (net::ERR_INTERNET_DISCONNECTED), as they would.
    tab.offline = True
    await tab.context.set_offline(True)
    assert await page.evaluate("navigator.onLine") is False
    await page.evaluate("window.__sockets.at(-1).close(4000, 'test: network lost')")
    await expect(conn).to_have_text("Offline: reconnecting when the network is back")

    for text in WHILE_OFFLINE:
        await someone.say(chat_id, text)  # stored and published, to nobody on the page
    await page.wait_for_timeout(700)  # a little time in which nothing may arrive
    await expect(texts).to_have_text(before)
    await expect(conn).not_to_have_text("Connected")
    assert len(tab.sockets) == 1, "no socket opened while offline"

    await tab.context.set_offline(False)
    await expect(conn).to_have_text("Connected")
    await expect(texts).to_have_text([*before, *WHILE_OFFLINE])  # each once, in order
    await expect(page.locator("#coords")).to_contain_text(fmt(MOVED))  # none had a location
    tab.offline = False
    assert len(tab.sockets) == 2, [ws.url for ws in tab.sockets]
    assert tab.offline_failures, "the page did not try to reconnect while offline"
    # Nothing more trickles in (a late duplicate from the resume and a live copy, say).
    await page.wait_for_timeout(500)
    await expect(texts).to_have_text([*before, *WHILE_OFFLINE])


async def unread_badge(tab: Tab, site: Site, http: httpx.AsyncClient) -> None:
    """A second participant's chat arrives while the first is open: its messages count as
    unread in the list and in the title until staff opens it. (The other half of the rule,
    a message for the open chat while the page is hidden, is not simulated: headless
    Chromium keeps every page visible, and faking ``document.hidden`` would test the fake.)
    """
    page = tab.page
    other = await sign_up_participant(http)
    await other.request_help("Lost my child at the food court", (52.2301, 21.0131))
    await expect(page.locator("#waiting")).to_have_text("1")
    switch = page.get_by_role("switch", name="Accept new chats")
    await page.locator("label", has=switch).click()
    chats = page.locator("#chats li")
    await expect(chats).to_have_count(2)
    second = chats.filter(has_text=OTHER["email"])
    first = chats.filter(has_text=PARTICIPANT)
    # The open chat stays open; the new one's first message is unread.
    await expect(page.locator("#conv-title")).to_have_text(f"Chat with {PARTICIPANT}")
    await expect(first.get_by_role("button")).to_have_attribute("aria-current", "true")
    await expect(second.locator(".badge")).to_have_text("1")
    await expect(second.locator(".badge")).to_have_attribute("aria-label", "1 unread")
    await expect(page).to_have_title(f"(1) {TITLE}")
    await expect(first.locator(".badge")).to_have_count(0)

    other_chat = await other.connect(site.base)
    await other.say(other_chat, "She has a red cap")
    await expect(second.locator(".badge")).to_have_text("2")
    await expect(page).to_have_title(f"(2) {TITLE}")

    await second.get_by_role("button").click()
    await expect(page.locator("#conv-title")).to_have_text(f"Chat with {OTHER['email']}")
    await expect(page.locator("#messages li .text")).to_have_text(
        ["Problem description: Lost my child at the food court", "She has a red cap"]
    )
    await expect(page).to_have_title(TITLE)
    await expect(chats.locator(".badge")).to_have_count(0)

    await first.get_by_role("button").click()
    await expect(page.locator("#conv-title")).to_have_text(f"Chat with {PARTICIPANT}")
    await expect(page.locator("#coords")).to_contain_text(fmt(MOVED))
    await expect(page.locator("#event .event-name")).to_have_text(EVENT_NAME)
    assert other.client is not None
    await other.client.close()


async def close_and_archive(tab: Tab, someone: Participant, chat_id: str, shots: Path) -> None:
    page = tab.page
    assert someone.client is not None
    asked: list[str] = []

    async def accept(dialog: Dialog) -> None:
        asked.append(f"{dialog.type}: {dialog.message}")
        await dialog.accept()

    page.on("dialog", accept)
    await page.get_by_role("button", name="Close chat").click()
    closed = await someone.client.next("closed_chat", within=WAIT_S)
    assert closed["payload"] == {"chatId": chat_id}
    await expect(page.get_by_text("This chat has ended.")).to_be_visible()
    assert asked == ["confirm: Close this chat? The participant can then ask for help again."]
    # No message box and no close button for an ended chat (both carry ``hidden`` now).
    assert await page.locator("#composer").get_attribute("hidden") is not None
    assert await page.locator("#close-chat").get_attribute("hidden") is not None
    await tab.check_layout("after the chat ended")
    await expect(page.locator("#chats li")).to_have_text([OTHER["email"]])  # the other one
    page.remove_listener("dialog", accept)
    tab.assert_layout()

    everything = [f"Problem description: {DESCRIPTION}", MOVED_TEXT, REPLY, *WHILE_OFFLINE]
    await page.get_by_role("link", name="Archives").first.click()
    await expect(page).to_have_url(url(tab, "/console/archives"))
    await expect(page.locator("h1")).to_have_text("Archives")
    rows = page.locator("tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows).to_contain_text(PARTICIPANT)
    transcript = rows.get_by_role("link", name="Transcript")
    await expect(transcript).to_have_attribute("href", f"/console/archives/{chat_id}")
    async with page.expect_navigation(wait_until="load") as navigation:
        await transcript.click()
    answer = await navigation.value
    assert answer is not None and answer.status == 200, "the transcript page failed"
    await expect(page).to_have_url(url(tab, f"/console/archives/{chat_id}"))
    await expect(page.locator("h1")).to_have_text(f"Chat with {PARTICIPANT}")
    await expect(page.locator(".messages li .text")).to_have_text(everything)
    await expect(page.locator(".messages li.mine .text")).to_have_text([REPLY])
    await expect(page.locator(".messages li").nth(1)).to_contain_text(fmt(MOVED))
    await expect(page.locator("aside .hint")).to_contain_text(fmt(MOVED))  # last location
    await page.screenshot(path=shots / "console-archive.png", full_page=True)

    await page.get_by_role("link", name="Create issue from this chat").click()
    await expect(page).to_have_url(
        re.compile(r"/console/issues/new\?eventId=\d+&chatId=" + chat_id)
    )
    await expect(page.locator("h1")).to_have_text("New issue")
    event = page.get_by_label("Event")
    await expect(event.locator("option:checked")).to_have_text(EVENT_NAME)
    description = page.get_by_label("Description")
    await expect(description).to_have_value(re.compile(re.escape(chat_id)))
    await expect(description).to_have_value(re.compile(re.escape(f"/console/archives/{chat_id}")))
    await expect(page.get_by_label("Title")).to_have_value("Help request follow-up")
    # And it saves, with the transcript's address in it.
    async with page.expect_navigation(wait_until="load"):
        await page.get_by_role("button", name="Add issue", exact=True).click()
    await expect(page.get_by_role("status")).to_have_text("The issue is saved.")


async def test_live_support_journey(browser: Browser, site: Site, shots: Path) -> None:
    async with httpx.AsyncClient(base_url=site.base, timeout=WAIT_S) as http:
        someone = await sign_in_participant(http, PARTICIPANT, DEMO_PASSWORD)
        await someone.request_help(DESCRIPTION, START)

        tab = await open_tab(
            browser,
            site.base,
            keep_sockets=True,  # reconnects_after_network_loss drops the chat's socket
            offline_urls=["/console/live/token"],  # reconnection attempts while offline
            **DESKTOP,
        )
        await sign_in_and_take_the_request(tab)
        chat_id = await someone.connect(site.base)
        assert re.fullmatch(r"[0-9a-f]{24}", chat_id)
        await talk(tab, someone, chat_id, shots)
        await reconnects_after_network_loss(tab, someone, chat_id)
        await unread_badge(tab, site, http)
        await close_and_archive(tab, someone, chat_id, shots)
        assert someone.client is not None
        await someone.client.close()

        tab.assert_clean()
        await tab.context.close()
