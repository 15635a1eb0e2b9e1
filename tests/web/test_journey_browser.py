"""The whole journey in two browsers at once: staff in the console on a desktop, a
participant in the app on a phone, both Debian's Chromium driven by Playwright against one
real ``aidpost serve`` (fresh data; the agency, its users and its event are made through
the pages).

An agency registers and the superadmin approves it; the owner adds a support user and an
event that is on now. On the phone, a participant signs up, finds the event, asks for
medical help with the phone's location and waits in the queue; the support user takes the
request in live support, where the location shows; the phone's waiting page moves to the
conversation by itself. They talk, the participant's new location travelling with their
message. The phone then loses its network (and its socket) while staff writes twice: with
its service worker it still opens the conversation and the chat list from what it saved,
and back online it reconnects by itself and shows the two messages once each, in order.
Staff closes the chat; both find it archived.

Map tiles are aborted and pages are watched for console errors, page errors and failed
requests as in every browser test (``tests/web/browser.py``); while the phone is offline
only its reconnection attempts may fail. The console's own screenshots are taken by
``test_console_browser.py`` and ``test_live_browser.py``; this test saves the app's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Dialog, expect

from tests.conftest import SUPERADMIN
from tests.contract.server import serve
from tests.web.browser import (
    DESKTOP,
    PHONE,
    WAIT_MS,
    Tab,
    goto,
    notice,
    open_tab,
    press,
    url,
)
from tests.web.test_console_browser import (
    SUPPORT,
    owner_adds_support_user,
    register_agency,
    sign_in,
    sign_out,
    superadmin_approves,
)

pytestmark = pytest.mark.usefixtures("patient_expect")

PARTICIPANT = {
    "email": "ada@phone.example",
    "phoneNumber": "+48 600 100 200",
    "password": "ada-on-her-phone",  # participant passwords: 8 to 128
}
NOW = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
EVENT = {
    "name": "Harbour night run",
    "description": "Ten kilometres along the quays.",
    "address": "Long Bridge, Gdańsk",
    "lat": "54.3494",
    "lng": "18.6578",
    "start": (NOW - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),  # on now
    "end": (NOW + dt.timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M"),
}
MEDICAL = "I need medical assistance"
PROBLEM = f"Problem description: {MEDICAL}"
HERE = {"latitude": 54.35, "longitude": 18.65}  # where the phone is when it asks
MOVED = {"latitude": 54.3521, "longitude": 18.6466}  # where it is when it writes
MOVED_TEXT = "I am by the blue tent now, my ankle hurts"
REPLY = "Stay there, a medic is coming"
WHILE_OFFLINE = ["The medic has the tent's number", "Two minutes away"]
EVERYTHING = [PROBLEM, MOVED_TEXT, REPLY, *WHILE_OFFLINE]
APP_OFFLINE = "Offline: your messages are sent when the network is back"  # appchat.js
CHAT_ID = r"[0-9a-f]{24}"


def fmt(where: dict[str, float]) -> str:
    """As live support shows a location: 5 decimals."""
    return f"{where['latitude']:.5f}, {where['longitude']:.5f}"


@pytest.fixture
def base(tmp_path: Path) -> Iterator[str]:
    env = {
        "AIDPOST_ENV": "test",
        "AIDPOST_MAILER_TRANSPORT_URL": "file:outgoing-mail",
        "AIDPOST_AUTH_SUPERADMIN_EMAIL": SUPERADMIN[0],
        "AIDPOST_AUTH_SUPERADMIN_PASSWORD": SUPERADMIN[1],
        "AIDPOST_RATE_LIMIT": "100000/minute",
    }
    data = tmp_path / "server"
    data.mkdir()
    with serve(data, env) as started:
        yield started


# -- staff: the agency, its support user and its event (the console's own test checks these
# -- pages closely; here they are the way to a world) ----------------------------------------


async def owner_adds_event_on_now(staff: Tab) -> None:
    page = staff.page
    nav = page.get_by_role("navigation", name="Console")
    await nav.get_by_role("link", name="Events", exact=True).click()
    await expect(page).to_have_url(url(staff, "/console/events"))
    await page.get_by_role("link", name="Add event").click()
    await expect(page).to_have_url(url(staff, "/console/events/new"))
    await page.get_by_label("Name", exact=True).fill(EVENT["name"])
    await page.get_by_label("Description").fill(EVENT["description"])
    await page.get_by_label("Address").fill(EVENT["address"])
    await page.get_by_label("Latitude").fill(EVENT["lat"])
    await page.get_by_label("Longitude").fill(EVENT["lng"])
    await page.get_by_label("Starts (UTC)").fill(EVENT["start"])
    await page.get_by_label("Ends (UTC)").fill(EVENT["end"])
    answer = await press(staff, "Add event")
    assert answer.status == 200
    await expect(page).to_have_url(url(staff, "/console/events"))
    await notice(staff, "The event is saved.")
    await expect(page.get_by_role("row").filter(has_text=EVENT["name"])).to_have_count(1)
    await sign_out(staff)


async def set_up_the_agency(staff: Tab, scratch: Path) -> None:
    # Their screenshots are test_console_browser.py's: these go to a scratch folder.
    await register_agency(staff, scratch)
    await superadmin_approves(staff, scratch)
    await owner_adds_support_user(staff, scratch)
    await owner_adds_event_on_now(staff)


# -- the participant's phone ------------------------------------------------------------------


async def signs_up(phone: Tab) -> None:
    page = phone.page
    answer = await goto(phone, "/app/sign-up")
    assert answer.status == 200
    await expect(page.locator("h1")).to_have_text("Sign up")
    await page.get_by_label("Email").fill(PARTICIPANT["email"])
    await page.get_by_label("Phone number").fill(PARTICIPANT["phoneNumber"])
    await page.get_by_label("Password", exact=True).fill(PARTICIPANT["password"])
    await page.get_by_label("Repeat the password").fill(PARTICIPANT["password"])
    answer = await press(phone, "Sign up")
    assert answer.status == 200
    await expect(page).to_have_url(url(phone, "/app/help"))
    await expect(page.locator("h1")).to_have_text("Find your event")
    # app.js registered the service worker; once active it takes this page (clients.claim),
    # and every page from now on goes through it and is kept.
    await page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=WAIT_MS)
    assert await page.evaluate("navigator.serviceWorker.controller.scriptURL") == (
        phone.base + "/app/sw.js"
    )


async def finds_the_event_and_asks_for_help(phone: Tab, shots: Path) -> None:
    page = phone.page
    cards = page.locator(".event-cards a.link-card")
    for _ in range(30):  # the events read model fills through the bus
        await page.get_by_label("Event name, place or description").fill("night run")
        answer = await press(phone, "Search")
        assert answer.status == 200
        if await cards.count():
            break
        await expect(page.locator(".event-cards")).to_contain_text("No event matches")
        await page.wait_for_timeout(300)
    await expect(page).to_have_url(url(phone, r"/app/help\?query=night\+run"))
    await expect(cards).to_have_count(1)
    card = cards.first
    await expect(card).to_contain_text(EVENT["name"])
    await expect(card).to_contain_text(EVENT["address"])
    await phone.check_layout("the event search")
    await page.screenshot(path=shots / "app-help.png", full_page=True)

    await card.click()
    await expect(page).to_have_url(url(phone, r"/app/events/\d+"))
    await expect(page.locator("h1")).to_have_text(EVENT["name"])
    await expect(page.locator(".description")).to_have_text(EVENT["description"])
    await page.get_by_label(MEDICAL).check()
    await expect(page.get_by_label(MEDICAL)).to_be_checked()
    # The phone's location (the context grants geolocation), shown and put in the form.
    where = f"{HERE['latitude']:.5f}, {HERE['longitude']:.5f}"
    await expect(page.locator("#where-status")).to_have_text(
        f"Your location will be sent ({where})."
    )
    await expect(page.locator("#lat")).to_have_value(f"{HERE['latitude']:.6f}")
    await expect(page.locator("#lng")).to_have_value(f"{HERE['longitude']:.6f}")
    await phone.check_layout("the event")
    # Scrolled to the end, the button clears the fixed bottom navigation (which covers it at
    # first on this screen). The picture is the screen as the phone shows it: a full-page
    # one would draw the navigation over the button.
    await page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    button, tabs = await page.evaluate(
        """[document.querySelector("#help-form button[type=submit]"),
            document.querySelector("nav.bottom-nav")].map((e) => e.getBoundingClientRect())
            .map((r) => ({top: r.top, bottom: r.bottom}))"""
    )
    assert button["bottom"] <= tabs["top"], f"the tabs cover the button: {button}, {tabs}"
    await page.screenshot(path=shots / "app-event.png")

    answer = await press(phone, "Request help")
    assert answer.status == 200
    await expect(page).to_have_url(url(phone, r"/app/requests/\d+"))
    await notice(phone, "Help is on its way.")
    await expect(page.locator("h1")).to_have_text("Help requested")
    await expect(page.locator(".waiting-view .big")).to_have_text("Place 1 in the queue")
    await expect(page.get_by_role("button", name="Cancel the request")).to_be_visible()
    await phone.check_layout("waiting in the queue")
    await page.screenshot(path=shots / "app-waiting.png", full_page=True)


# -- the two together --------------------------------------------------------------------------


async def support_takes_the_request(staff: Tab) -> None:
    page = staff.page
    answer = await sign_in(staff, SUPPORT["email"], SUPPORT["password"])
    assert answer.status == 200
    await expect(page).to_have_url(url(staff, "/console/live"))
    await expect(page.locator("#conn")).to_have_text("Connected")
    await expect(page.locator("#waiting")).to_have_text("1")
    switch = page.get_by_role("switch", name="Accept new chats")
    await expect(switch).not_to_be_checked()
    await page.locator("label", has=switch).click()  # as test_live_browser.py: the label
    chats = page.locator("#chats li")
    await expect(chats).to_have_text([PARTICIPANT["email"]])
    await expect(page.locator("#waiting")).to_have_text("0")
    await expect(page.locator("#conv-title")).to_have_text(f"Chat with {PARTICIPANT['email']}")
    await expect(page.locator("#messages li .text")).to_have_text([PROBLEM])
    await expect(page.locator("#participant")).to_contain_text(PARTICIPANT["phoneNumber"])
    await expect(page.locator("#coords")).to_contain_text(fmt(HERE))  # the request's location
    await expect(page.locator("#event .event-name")).to_have_text(EVENT["name"])


async def conversation_opens_by_itself(phone: Tab) -> str:
    page = phone.page
    # The waiting page asks every 3 s; once the request is taken it opens the chat.
    await expect(page).to_have_url(url(phone, f"/app/chats/{CHAT_ID}"))
    chat_id = page.url.rsplit("/", 1)[1]
    await expect(page.locator("h1")).to_have_text(EVENT["name"])
    await expect(page.locator("#conn")).to_have_text("Connected")
    await expect(page.locator("#messages li .text")).to_have_text([PROBLEM])
    await expect(page.locator("#messages li.mine")).to_have_count(1)  # their own words
    await expect(page.get_by_label("Send my location with each message")).to_be_checked()
    return chat_id


async def phone_says(phone: Tab, text: str) -> None:
    page = phone.page
    await page.get_by_label("Message", exact=True).fill(text)
    await page.get_by_role("button", name="Send", exact=True).click()
    await expect(page.get_by_label("Message", exact=True)).to_have_value("")


async def staff_says(staff: Tab, text: str) -> None:
    box = staff.page.get_by_label("Message", exact=True)
    await box.fill(text)
    await box.press("Enter")
    await expect(box).to_have_value("")
    await expect(staff.page.locator("#messages li.pending")).to_have_count(0)  # acknowledged


async def talk(staff: Tab, phone: Tab, shots: Path) -> None:
    staff_texts = staff.page.locator("#messages li .text")
    phone_texts = phone.page.locator("#messages li .text")

    # The phone moves, then writes: its new location goes with the message. The page's
    # watchPosition hears of the move; what it heard is the frame's last position, which a
    # getCurrentPosition that accepts any age returns (one asking for a fresh position would
    # wait forever: an emulated position is reported once).
    await phone.context.set_geolocation(MOVED)
    for _ in range(50):
        heard = await phone.page.evaluate(
            """new Promise((ok, no) => navigator.geolocation.getCurrentPosition(
                (p) => ok([p.coords.latitude, p.coords.longitude]), no,
                {maximumAge: Infinity, timeout: 5000}))"""
        )
        if heard == [MOVED["latitude"], MOVED["longitude"]]:
            break
        await phone.page.wait_for_timeout(100)
    assert heard == [MOVED["latitude"], MOVED["longitude"]], heard
    await phone_says(phone, MOVED_TEXT)
    await expect(phone_texts).to_have_text([PROBLEM, MOVED_TEXT])
    await expect(phone.page.locator("#messages li.pending")).to_have_count(0)  # acknowledged
    await expect(staff_texts).to_have_text([PROBLEM, MOVED_TEXT])
    await expect(staff.page.locator("#coords")).to_contain_text(fmt(MOVED))
    await expect(staff.page.locator("#coords")).not_to_contain_text(fmt(HERE))

    await staff_says(staff, REPLY)
    await expect(phone_texts).to_have_text([PROBLEM, MOVED_TEXT, REPLY])
    await expect(phone.page.locator("#messages li.theirs .text")).to_have_text([REPLY])
    await expect(phone.page.locator("#messages li.theirs .meta")).to_contain_text("Emergency team")
    await phone.check_layout("the conversation")
    await phone.page.screenshot(path=shots / "app-chat.png", full_page=True)


async def chat_list_while_active(phone: Tab, chat_id: str) -> None:
    """Seen once online, so that it opens offline too."""
    page = phone.page
    await page.get_by_role("navigation", name="Tabs").get_by_role("link", name="Chats").click()
    await expect(page).to_have_url(url(phone, "/app/chats"))
    active = page.locator("a.active-chat")
    await expect(active).to_have_count(1)
    await expect(active).to_have_attribute("href", f"/app/chats/{chat_id}")
    await expect(active).to_contain_text(EVENT["name"])
    await expect(active.locator(".chip")).to_have_text("Active")
    await active.click()
    await expect(page).to_have_url(url(phone, f"/app/chats/{chat_id}"))
    await expect(page.locator("#conn")).to_have_text("Connected")
    await expect(page.locator("#messages li .text")).to_have_text([PROBLEM, MOVED_TEXT, REPLY])
    # Both pages were kept by the service worker.
    for path in ("/app/chats", f"/app/chats/{chat_id}"):
        kept = await page.evaluate("(at) => caches.match(at).then((r) => r !== undefined)", path)
        assert kept, f"the service worker kept no copy of {path}"


async def offline_and_back(staff: Tab, phone: Tab, chat_id: str) -> None:
    page = phone.page
    texts = page.locator("#messages li .text")
    conn = page.locator("#conn")
    before = [PROBLEM, MOVED_TEXT, REPLY]
    sockets = len(phone.sockets)

    # As in test_live_browser.py: Chromium's offline emulation leaves an open socket open
    # and delivering, so the test drops it too, as a lost network would.
    await phone.set_offline(True)
    assert await page.evaluate("navigator.onLine") is False
    await page.evaluate("window.__sockets.forEach((s) => s.close(4000, 'test: network lost'))")
    await expect(conn).to_have_text(APP_OFFLINE)
    await expect(page.locator("#net")).to_be_visible()

    for text in WHILE_OFFLINE:
        await staff_says(staff, text)  # stored and published, to nobody on the phone
    await expect(staff.page.locator("#messages li .text")).to_have_text(EVERYTHING)
    await page.wait_for_timeout(700)  # a little time in which nothing may arrive
    await expect(texts).to_have_text(before)

    # Offline, the conversation opens again from the service worker's copy of the page and
    # the messages this phone saved.
    answer = await page.reload(wait_until="load")
    assert answer is not None and answer.status == 200
    assert answer.from_service_worker, "the offline page did not come from the service worker"
    await expect(page).to_have_url(url(phone, f"/app/chats/{chat_id}"))
    await expect(page.locator("h1")).to_have_text(EVENT["name"])
    await expect(texts).to_have_text(before)
    await expect(page.locator("#messages li.theirs .text")).to_have_text([REPLY])
    await expect(conn).to_have_text(APP_OFFLINE)
    await expect(page.locator("#net")).to_have_text("Offline: showing what was saved")

    # A page never seen (Settings) gives the service worker's offline page.
    tabs = page.get_by_role("navigation", name="Tabs")
    await tabs.get_by_role("link", name="Settings").click()
    await expect(page).to_have_url(url(phone, "/app/settings"))
    await expect(page.locator("h1")).to_have_text("You are offline")
    await expect(tabs).to_have_count(1)  # the tabs lead on to what the phone kept

    # The chat list, seen before, opens as it was.
    await tabs.get_by_role("link", name="Chats").click()
    await expect(page).to_have_url(url(phone, "/app/chats"))
    await expect(page.locator("h1")).to_have_text("Chats")
    active = page.locator("a.active-chat")
    await expect(active).to_have_attribute("href", f"/app/chats/{chat_id}")
    await expect(page.locator("#net")).to_be_visible()
    await active.click()
    await expect(page).to_have_url(url(phone, f"/app/chats/{chat_id}"))
    await expect(texts).to_have_text(before)
    await expect(conn).to_have_text(APP_OFFLINE)
    assert len(phone.sockets) == sockets, "a socket opened while offline"

    # Back online: it reconnects by itself, resumes, and shows each missed message once.
    await phone.set_offline(False)
    await expect(conn).to_have_text("Connected")
    await expect(page.locator("#net")).to_be_hidden()
    await expect(texts).to_have_text(EVERYTHING)
    await expect(page.locator("#messages li.theirs .text")).to_have_text([REPLY, *WHILE_OFFLINE])
    assert phone.offline_failures, "the phone did not try to reconnect while offline"
    await page.wait_for_timeout(500)  # no late duplicate from the resume and a live copy
    await expect(texts).to_have_text(EVERYTHING)


async def staff_closes(staff: Tab, phone: Tab) -> None:
    page = staff.page
    asked: list[str] = []

    async def accept(dialog: Dialog) -> None:
        asked.append(f"{dialog.type}: {dialog.message}")
        await dialog.accept()

    page.on("dialog", accept)
    await page.get_by_role("button", name="Close chat").click()
    await expect(page.get_by_text("This chat has ended.")).to_be_visible()
    assert asked == ["confirm: Close this chat? The participant can then ask for help again."]
    page.remove_listener("dialog", accept)
    await expect(page.locator("#chats li")).to_have_count(0)

    await expect(phone.page.get_by_text("Chat has ended.")).to_be_visible()
    await expect(phone.page.locator("#composer")).to_have_count(0)
    await expect(phone.page.get_by_label("Send my location with each message")).to_have_count(0)
    await expect(phone.page.locator("#messages li .text")).to_have_text(EVERYTHING)


async def staff_finds_the_transcript(staff: Tab, chat_id: str) -> None:
    page = staff.page
    await page.get_by_role("link", name="Archives").first.click()
    await expect(page).to_have_url(url(staff, "/console/archives"))
    rows = page.locator("tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows).to_contain_text(PARTICIPANT["email"])
    async with page.expect_navigation(wait_until="load") as navigation:
        await rows.get_by_role("link", name="Transcript").click()
    answer = await navigation.value
    assert answer is not None and answer.status == 200
    await expect(page).to_have_url(url(staff, f"/console/archives/{chat_id}"))
    await expect(page.locator("h1")).to_have_text(f"Chat with {PARTICIPANT['email']}")
    await expect(page.locator(".messages li .text")).to_have_text(EVERYTHING)
    await expect(page.locator(".messages li.mine .text")).to_have_text([REPLY, *WHILE_OFFLINE])
    # The participant's message carried the phone's new location.
    await expect(page.locator(".messages li").nth(1)).to_contain_text(fmt(MOVED))
    await expect(page.locator("aside .hint")).to_contain_text(fmt(MOVED))  # the last one


async def participant_finds_the_archive(phone: Tab, chat_id: str, shots: Path) -> None:
    page = phone.page
    await page.get_by_role("link", name="← Chats").click()
    await expect(page).to_have_url(url(phone, "/app/chats"))
    await expect(page.locator("a.active-chat")).to_have_count(0)
    archived = page.locator(f'.chat-cards a[href="/app/chats/{chat_id}"]')
    await expect(archived).to_have_count(1)
    await expect(archived).to_contain_text(EVENT["name"])
    await phone.check_layout("the chat list")
    await page.screenshot(path=shots / "app-chats.png", full_page=True)

    await archived.click()
    await expect(page).to_have_url(url(phone, f"/app/chats/{chat_id}"))
    await expect(page.get_by_text("Chat has ended.")).to_be_visible()
    await expect(page.locator("#messages li .text")).to_have_text(EVERYTHING)
    await expect(page.locator("#messages li.theirs .text")).to_have_text([REPLY, *WHILE_OFFLINE])
    # Read-only: no message box, no connection.
    await expect(page.locator("#composer")).to_have_count(0)
    await expect(page.locator("#conn")).to_have_count(0)
    await phone.check_layout("an ended chat")

    # The request is over: no open request on Help, and the event offers help again.
    await page.get_by_role("navigation", name="Tabs").get_by_role("link", name="Help").click()
    await expect(page).to_have_url(url(phone, "/app/help"))
    await expect(page.locator(".waiting-card")).to_have_count(0)
    await page.get_by_role("link", name=EVENT["name"]).click()
    await expect(page).to_have_url(url(phone, r"/app/events/\d+"))
    await expect(page.get_by_role("button", name="Request help")).to_be_visible()
    await expect(page.get_by_text("Help already requested.")).to_have_count(0)


async def test_help_from_a_phone_to_the_console(
    browser: Browser, base: str, shots: Path, tmp_path: Path
) -> None:
    staff = await open_tab(browser, base, **DESKTOP)
    phone_options: dict[str, Any] = {
        **PHONE,
        "geolocation": HERE,
        "permissions": ["geolocation"],
    }
    # While offline, the conversation's reconnection attempts fail at the token request.
    phone = await open_tab(
        browser, base, keep_sockets=True, offline_urls=["/app/live/token"], **phone_options
    )
    scratch = tmp_path / "console-shots"
    scratch.mkdir()

    await set_up_the_agency(staff, scratch)
    await signs_up(phone)
    await finds_the_event_and_asks_for_help(phone, shots)
    await support_takes_the_request(staff)
    chat_id = await conversation_opens_by_itself(phone)
    await talk(staff, phone, shots)
    await chat_list_while_active(phone, chat_id)
    await offline_and_back(staff, phone, chat_id)
    await staff_closes(staff, phone)
    await staff_finds_the_transcript(staff, chat_id)
    await participant_finds_the_archive(phone, chat_id, shots)

    staff.assert_clean()
    phone.assert_clean()
    await staff.context.close()
    await phone.context.close()
