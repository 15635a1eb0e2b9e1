"""Resends stored once, resume after a reconnect, every device in sync, and the limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import websockets

from tests.contract.server import serve
from tests.messenger.client import Client
from tests.messenger.test_chat_flow import World


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    env = {
        "AIDPOST_RATE_LIMIT": "100000/minute",
        "AIDPOST_MESSENGER_AUTH_TIMEOUT_SECONDS": "1",
        "AIDPOST_MESSENGER_IDLE_TIMEOUT_SECONDS": "5",
        "AIDPOST_MESSENGER_ACTIONS_PER_SECOND": "5",
        "AIDPOST_MESSENGER_ACTIONS_BURST": "10",
        "AIDPOST_MESSENGER_MAX_MESSAGE_CHARS": "100",
    }
    with serve(tmp_path, env, "--demo") as base:
        w = World(base)
        yield w
        await w.http.aclose()


async def open_chat(world: World) -> tuple[Client, Client, str, str, str]:
    staff_token = await world.token("organizer", "support")
    participant_token = await world.token("participant", "participant")
    await world.request_help(participant_token, "lost")
    staff = await Client.connect(world.base, staff_token, get_chats=False)
    chat_id = (await staff.start_chat())["id"]
    assert (await staff.next("user_message"))["payload"]["seq"] == 1
    staff.frames.clear()
    participant = await Client.connect(world.base, participant_token, get_chats=False)
    return staff, participant, chat_id, staff_token, participant_token


async def test_resend_is_stored_once_and_devices_stay_in_sync(world: World) -> None:
    staff, phone, chat_id, _st, participant_token = await open_chat(world)
    tablet = await Client.connect(world.base, participant_token, get_chats=False)
    await asyncio.sleep(0.2)  # both devices subscribed
    body = {"chatId": chat_id, "message": "are you there?", "clientId": "m-1"}
    await phone.send("send_message", body)
    await phone.send("send_message", body)  # a resend after a doubtful moment
    seqs = []
    for client in (phone, tablet, staff):
        seqs.append((await client.next("user_message"))["payload"]["seq"])
    assert seqs == [2, 2, 2]
    for client in (phone, tablet):
        # the resend is published again, and the gateway drops it: these devices have it
        with pytest.raises(TimeoutError):
            await client.next("user_message", within=0.5)
    await tablet.send("get_chat_history", {"chatId": chat_id})
    history = (await tablet.next("chat_history"))["payload"]["messages"]
    assert [m["content"] for m in history].count("are you there?") == 1


async def test_resume_sends_exactly_what_was_missed(world: World) -> None:
    staff, phone, chat_id, _st, participant_token = await open_chat(world)
    await phone.send("hello", {"protocol": "aidpost.1"})
    assert (await phone.next("hello"))["payload"]["protocol"] == "aidpost.1"
    await phone.send("get_chat_history", {"chatId": chat_id})
    last = (await phone.next("chat_history"))["payload"]["messages"][-1]["seq"]
    await phone.close()
    for i in range(5):
        await staff.send("send_message", {"chatId": chat_id, "message": f"update {i}"})
        await staff.next("user_message")
    back = await Client.connect(world.base, participant_token, get_chats=False)
    await back.send("hello", {"protocol": "aidpost.1"})
    await back.next("hello")
    await back.send("resume", {"chats": {chat_id: last}})
    got = [(await back.next("user_message"))["payload"]["content"] for _ in range(5)]
    assert got == [f"update {i}" for i in range(5)]
    await back.next("resumed")
    await staff.send("send_message", {"chatId": chat_id, "message": "live again"})
    assert (await back.next("user_message"))["payload"]["content"] == "live again"


async def test_a_resume_covers_what_came_before_the_hello(world: World) -> None:
    """Before its hello is answered a socket is served as ESME's clients are: live messages
    come at once. A resume after the hello still sends everything after the sequence
    number it names, in order, those too; a client ignores what came before the hello."""
    staff, phone, chat_id, _st, participant_token = await open_chat(world)
    await phone.close()
    back = await Client.connect(world.base, participant_token, get_chats=False)
    await asyncio.sleep(0.2)  # authenticated and subscribed; no hello yet
    await staff.send("send_message", {"chatId": chat_id, "message": "before hello"})
    early = (await back.next("user_message"))["payload"]
    assert (early["seq"], early["content"]) == (2, "before hello")
    await back.send("hello", {"protocol": "aidpost.1"})
    await back.next("hello")
    await back.send("resume", {"chats": {chat_id: 0}})
    got = [(await back.next("user_message"))["payload"]["seq"] for _ in range(2)]
    assert got == [1, 2]
    await back.next("resumed")


async def test_staff_see_the_waiting_count(world: World) -> None:
    staff_token = await world.token("organizer", "support")
    staff = await Client.connect(world.base, staff_token, get_chats=False)
    await staff.send("hello", {"protocol": "aidpost.1"})
    await staff.next("hello")
    assert (await staff.next("queue"))["payload"]["waiting"] == 0
    await world.request_help(await world.token("participant", "participant"), "help")
    assert (await staff.next("queue", within=10))["payload"]["waiting"] == 1
    await staff.start_chat()
    assert (await staff.next("queue"))["payload"]["waiting"] == 0


async def test_esme_clients_never_get_unknown_frames(world: World) -> None:
    """ESME's UIs crash on frame types they do not know: no `queue` without `hello`."""
    staff_token = await world.token("organizer", "support")
    staff = await Client.connect(world.base, staff_token)
    await staff.next("chats")
    await world.request_help(await world.token("participant", "participant"), "help")
    await staff.start_chat()
    await asyncio.sleep(0.3)
    known = {"chats", "chat_history", "user_message", "new_chat", "closed_chat", "info", "error"}
    assert {f["type"] for f in staff.frames} <= known


async def test_limits(world: World) -> None:
    _staff, phone, chat_id, _st, _pt = await open_chat(world)
    await phone.send("send_message", {"chatId": chat_id, "message": "x" * 101})
    assert (await phone.next("error"))["payload"][
        "message"
    ] == "message must be at most 100 characters"
    for _ in range(30):
        await phone.send("get_chats", "")
    errors = []
    for _ in range(30):
        frame = await phone.next()
        if frame["type"] == "error":
            errors.append(frame["payload"]["message"])
    assert errors and set(errors) == {"too many actions; slow down"}

    ws = await websockets.connect(world.base.replace("http", "ws") + "/messenger-api/connect")
    with pytest.raises(websockets.ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 5)  # no Authorization frame within 1 s
    idle = await Client.connect(
        world.base, (await world.token("participant", "participant")), get_chats=False
    )
    assert (await idle.next("error", within=10))["payload"]["message"] == "timeout"
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(idle.ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


async def test_quiet_sockets_still_get_what_comes(world: World) -> None:
    """A socket with nothing to send has no writer (the sweeper retires it, every second
    here): the next frame for it starts one, and nothing is lost or reordered."""
    staff, phone, chat_id, _st, _pt = await open_chat(world)
    for round_ in range(2):
        await asyncio.sleep(2.2)  # two sweeps: both sockets' writers retired
        words = [f"round {round_} message {i}" for i in range(3)]
        for word in words:
            await staff.send("send_message", {"chatId": chat_id, "message": word})
        got = [(await phone.next("user_message"))["payload"]["content"] for _ in words]
        assert got == words
        await asyncio.sleep(2.2)
        await phone.send("send_message", {"chatId": chat_id, "message": f"reply {round_}"})
        # The staff socket gets its own three back (every device of the sender does), then
        # the reply, in order.
        seen = [(await staff.next("user_message"))["payload"]["content"] for _ in range(4)]
        assert seen == [*words, f"reply {round_}"]
        assert (await phone.next("user_message"))["payload"]["content"] == f"reply {round_}"


async def test_text_no_database_can_store_is_refused_and_holds_nothing_back(world: World) -> None:
    staff, phone, chat_id, _st, _pt = await open_chat(world)
    for bad in ('"a\\u0000b"', '"\\ud800"'):
        await phone.send_raw(
            f'{{"type":"send_message","payload":{{"chatId":"{chat_id}","message":{bad}}}}}'
        )
        assert (await phone.next("error"))["payload"]["message"] == "invalid message payload"
    await phone.send("send_message", {"chatId": chat_id, "message": "x", "clientId": "c" * 65})
    assert (await phone.next("error"))["payload"]["message"] == "invalid message payload"
    await phone.send_raw('{"type":"get_chats","payload":' + "[" * 60000 + "]" * 60000 + "}")
    assert (await phone.next("error"))["payload"]["message"] in (
        "malformed message",
        "frame over 65536 bytes",
    )
    await phone.send("send_message", {"chatId": chat_id, "message": "still fine"})
    assert (await staff.next("user_message"))["payload"]["content"] == "still fine"


async def test_participant_sees_the_queue_move(world: World) -> None:
    participant_token = await world.token("participant", "participant")
    phone = await Client.connect(world.base, participant_token, get_chats=False)
    await phone.send("hello", {"protocol": "aidpost.1"})
    await phone.next("hello")
    request = await world.request_help(participant_token, "help")
    place = (await phone.next("queue_position", within=10))["payload"]
    assert place == {"requestId": request["id"], "position": 1, "waiting": 1}
    staff = await Client.connect(
        world.base, await world.token("organizer", "support"), get_chats=False
    )
    await staff.start_chat()
    assert (await phone.next("new_chat"))["payload"]["eventId"] == request["eventId"]


async def test_a_client_that_never_reads_slows_nobody(world: World) -> None:
    """ESME's load-test organizer sends start_chat forever and never reads a frame."""
    staff_token = await world.token("organizer", "support")
    deaf = await Client.connect(world.base, staff_token, get_chats=False)
    for _ in range(300):
        await deaf.send("get_chats", "")  # answers pile up unread (errors once rate-limited)
    participant_token = await world.token("participant", "participant")
    phone = await Client.connect(world.base, participant_token)
    assert (await phone.next("chats", within=5))["type"] == "chats"


async def test_resume_reports_chats_closed_while_away(world: World) -> None:
    staff, phone, chat_id, _st, participant_token = await open_chat(world)
    await phone.close()
    await staff.send("close_chat", {"chatId": chat_id})
    await staff.next("closed_chat")
    back = await Client.connect(world.base, participant_token, get_chats=False)
    await back.send("hello", {"protocol": "aidpost.1"})
    await back.next("hello")
    await back.send("resume", {"chats": {chat_id: 1}})
    assert (await back.next("closed_chat"))["payload"] == {"chatId": chat_id}
    await back.next("resumed")


async def test_frames_dropped_for_a_full_queue_come_again_from_the_database(
    tmp_path: Path,
) -> None:
    """A staff socket whose outbound queue (two frames here) overflows drops what does not
    fit and, once drained, is resynchronised from the database: every message of every
    chat arrives once, in order (the missed ones read in one query for all the chats)."""
    env = {
        "AIDPOST_RATE_LIMIT": "100000/minute",
        "AIDPOST_MESSENGER_OUTBOUND_QUEUE": "2",
        "AIDPOST_MESSENGER_ACTIONS_PER_SECOND": "1000",
        "AIDPOST_MESSENGER_ACTIONS_BURST": "1000",
    }
    with serve(tmp_path, env, "--demo") as base:
        world = World(base)
        try:
            staff = await Client.connect(base, await world.token("organizer", "support"))
            await staff.next("chats")
            phones: dict[str, Client] = {}
            for n in range(3):
                password = "a-long-password-1"
                body = {
                    "email": f"drop{n}@example.org",
                    "password": password,
                    "confirmPassword": password,
                    "phoneNumber": "+48100200300",
                }
                r = await world.http.post("/participant-api/auth/sign-up", json=body)
                assert r.status_code == 201, r.text
                token = r.json()["token"]
                await world.request_help(token, f"help {n}")
                chat_id = (await staff.start_chat())["id"]
                phones[chat_id] = await Client.connect(base, token, get_chats=False)
            await asyncio.sleep(0.3)  # the phones subscribed
            for n in range(1, 31):  # bursts: the consumer's batches hold many at once
                for chat_id, phone in phones.items():
                    await phone.send("send_message", {"chatId": chat_id, "message": f"m{n}"})
            seen: dict[str, list[int]] = {chat_id: [] for chat_id in phones}
            while sum(map(len, seen.values())) < 3 * 31:
                payload = (await staff.next("user_message", within=10))["payload"]
                seen[payload["chatId"]].append(payload["seq"])
            with pytest.raises(TimeoutError):  # and nothing twice
                await staff.next("user_message", within=0.5)
            assert all(seqs == list(range(1, 32)) for seqs in seen.values()), seen
            assert "outbound queue full; dropping" in (tmp_path / "server.log").read_text()
        finally:
            await world.http.aclose()
