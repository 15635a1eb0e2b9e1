"""A whole chat over ESME's protocol against a real `aidpost serve`: request, start, talk,
close, archives; and the protocol's refusals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from aidpost.demo import DEMO_PASSWORD
from tests.contract.server import serve
from tests.messenger.client import Client


class World:
    def __init__(self, base: str) -> None:
        self.base = base
        self.http = httpx.AsyncClient(base_url=base, timeout=10)

    async def token(self, realm: str, who: str) -> str:
        r = await self.http.post(
            f"/{realm}-api/auth/sign-in",
            json={"email": f"{who}@demo.aidpost.example", "password": DEMO_PASSWORD},
        )
        assert r.status_code == 200, r.text
        token: str = r.json()["token"]
        if realm == "organizer" and who != "superadmin":
            for _ in range(400):  # the messenger learns of staff through the bus
                headers = {"Authorization": f"Bearer {token}"}
                if (
                    await self.http.get("/messenger-api/agency/chats", headers=headers)
                ).status_code == 200:
                    break
                await asyncio.sleep(0.05)
        return token

    async def request_help(self, token: str, description: str) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        for _ in range(400):  # the events read model fills through the bus
            events = (await self.http.get("/participant-api/events", headers=headers)).json()
            if events:
                break
            await asyncio.sleep(0.05)
        body = {"eventId": events[0]["id"], "description": description, "lat": 52.1, "lng": 21.0}
        r = await self.http.post("/participant-api/chat-requests", json=body, headers=headers)
        assert r.status_code == 200, r.text
        result: dict[str, Any] = r.json()
        return result


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    with serve(tmp_path, {"AIDPOST_RATE_LIMIT": "100000/minute"}, "--demo") as base:
        w = World(base)
        yield w
        await w.http.aclose()


async def test_a_chat_from_request_to_archive(world: World) -> None:
    staff_token = await world.token("organizer", "support")
    participant_token = await world.token("participant", "participant")
    staff = await Client.connect(world.base, staff_token)
    assert (await staff.next("chats"))["payload"] == {"chats": []}
    await staff.send("start_chat", "")
    assert (await staff.next("info"))["payload"] == {"message": "no new chats"}

    request = await world.request_help(participant_token, "I need medical assistance")
    new_chat = await staff.start_chat()
    assert new_chat["participant"]["email"] == "participant@demo.aidpost.example"
    assert new_chat["ended"] == 0 and new_chat["latStart"] == 52.1
    chat_id = new_chat["id"]
    assert isinstance(chat_id, str) and len(chat_id) == 24
    first = (await staff.next("user_message"))["payload"]
    assert first["content"] == "Problem description: I need medical assistance"
    assert first["fromOrganizer"] == 0 and first["seq"] == 1

    participant = await Client.connect(world.base, participant_token)
    chats = (await participant.next("chats"))["payload"]["chats"]
    assert [c["id"] for c in chats] == [chat_id] and "participant" not in chats[0]
    await participant.send("get_chat_history", {"chatId": chat_id})
    history = (await participant.next("chat_history"))["payload"]
    assert history["chatId"] == chat_id and [m["seq"] for m in history["messages"]] == [1]

    await participant.send(
        "send_message", {"chatId": chat_id, "message": "near stage A", "lat": 52.2, "lng": 21.1}
    )
    for client in (participant, staff):
        got = (await client.next("user_message"))["payload"]
        assert (got["content"], got["seq"], got["fromOrganizer"], got["lat"]) == (
            "near stage A",
            2,
            0,
            52.2,
        )
    await staff.send(
        "send_message", {"chatId": chat_id, "message": "on our way", "lat": 1, "lng": 1}
    )
    for client in (participant, staff):
        got = (await client.next("user_message"))["payload"]
        assert (got["content"], got["seq"], got["fromOrganizer"]) == ("on our way", 3, 1)
        assert "lat" not in got, "staff locations are not stored (ESME)"

    headers = {"Authorization": f"Bearer {participant_token}"}
    mine = (
        await world.http.get(f"/participant-api/help-requests/{request['id']}", headers=headers)
    ).json()
    assert mine["status"] == "claimed" and mine["chatId"] == chat_id

    await staff.send("close_chat", {"chatId": chat_id})
    for client in (participant, staff):
        assert (await client.next("closed_chat"))["payload"] == {"chatId": chat_id}
    await participant.send("send_message", {"chatId": chat_id, "message": "hello?"})
    assert (await participant.next("error"))["payload"][
        "message"
    ] == f"you have no access to chat {chat_id}"
    for _ in range(100):
        mine = (
            await world.http.get(f"/participant-api/help-requests/{request['id']}", headers=headers)
        ).json()
        if mine["status"] == "closed":
            break
        await asyncio.sleep(0.05)
    assert mine["status"] == "closed", "the lock is released: the participant may ask again"

    archive = (
        await world.http.get(
            "/messenger-api/agency/chats", headers={"Authorization": f"Bearer {staff_token}"}
        )
    ).json()
    assert [c["id"] for c in archive] == [chat_id] and archive[0]["ended"] == 1
    messages = (
        await world.http.get(
            f"/messenger-api/participant/chats/{chat_id}/messages", headers=headers
        )
    ).json()
    assert [m["content"] for m in messages] == [first["content"], "near stage A", "on our way"]
    await staff.close()
    await participant.close()


async def test_protocol_refusals(world: World) -> None:
    participant_token = await world.token("participant", "participant")
    client = await Client.connect(world.base, participant_token, get_chats=False)
    await client.send_raw("not json")
    assert (await client.next("error"))["payload"]["message"] == "malformed message"
    await client.send("start_chat", "")
    assert (await client.next("error"))["payload"]["message"] == "invalid message type"
    await client.send("dance", {})
    assert (await client.next("error"))["payload"]["message"] == "invalid message type"
    await client.send("get_chat_history", "x")
    assert (await client.next("error"))["payload"]["message"] == "invalid message payload"
    await client.send("get_chat_history", {"chatId": "nope"})
    assert (await client.next("error"))["payload"]["message"] == "you have no access to chat nope"
    await client.send_raw(
        '{"type":"send_message","payload":{"chatId":"x","message":"' + "a" * 70_000 + '"}}'
    )
    assert "frame over" in (await client.next("error"))["payload"]["message"]
    await client.send("get_chats", "")
    assert (await client.next("chats"))["payload"] == {"chats": []}, "still open after errors"
    await client.close()

    for first_frame in ('{"Authorization": "Bearer participant:garbage"}', "{}", "nope"):
        ws = await websockets.connect(world.base.replace("http", "ws") + "/messenger-api/connect")
        await ws.send(first_frame)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008

    admin = (
        await world.http.post(
            "/organizer-api/auth/sign-in",
            json={"email": "superadmin@aidpost.example", "password": "superadmin-password-dev"},
        )
    ).json()["token"]
    ws = await websockets.connect(world.base.replace("http", "ws") + "/messenger-api/connect")
    await ws.send(f'{{"Authorization": "Bearer {admin}"}}')
    with pytest.raises(websockets.ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 5)  # admins cannot chat (ESME)
    r = await world.http.get(
        "/messenger-api/agency/chats", headers={"Authorization": f"Bearer {admin}"}
    )
    assert r.status_code == 401 and r.json()["message"] == "invalid role"
    r = await world.http.get(
        "/messenger-api/agency/chats", headers={"Authorization": f"Bearer {participant_token}"}
    )
    assert r.status_code == 401 and r.json()["message"] == "invalid token type"
    r = await world.http.get(
        "/messenger-api/participant/chats", headers={"Authorization": "Bearer x"}
    )
    assert r.status_code == 401 and r.json()["message"] == "malformed token"
    r = await world.http.get(
        "/messenger-api/participant/chats/abc/messages",
        headers={"Authorization": f"Bearer {participant_token}"},
    )
    assert r.status_code == 400 and r.json()["message"] == "chat not found"


async def test_staff_removed_from_the_agency_may_no_longer_take_requests(world: World) -> None:
    """The socket was let in while the staff member was one; the consumer checks again at
    every ``start_chat``, so one removed meanwhile is refused, even with a request waiting."""
    owner_token = await world.token("organizer", "owner")
    staff_token = await world.token("organizer", "support")
    staff = await Client.connect(world.base, staff_token)
    await staff.next("chats")
    owner = {"Authorization": f"Bearer {owner_token}"}
    users = (await world.http.get("/organizer-api/agency/users", headers=owner)).json()
    support = next(u for u in users if u["email"] == "support@demo.aidpost.example")
    r = await world.http.delete(f"/organizer-api/agency/users/{support['id']}", headers=owner)
    assert r.status_code == 200, r.text
    for _ in range(100):  # the messenger learns of the removal through the bus
        await staff.send("start_chat", "")
        frame = await staff.next()
        while frame["type"] not in ("info", "error"):
            frame = await staff.next()
        if frame["type"] == "error":
            break
        assert frame["payload"] == {"message": "no new chats"}
        await asyncio.sleep(0.05)
    assert frame["payload"] == {"message": "you may no longer take requests"}
    # A request waiting changes nothing: the check comes before the queue. The owner's
    # socket (aidpost's protocol: queue counts) tells when the request is in the queue.
    watcher = await Client.connect(world.base, owner_token, get_chats=False)
    await watcher.send("hello", {"protocol": "aidpost.1"})
    assert (await watcher.next("queue"))["payload"]["waiting"] == 0
    await world.request_help(await world.token("participant", "participant"), "help")
    assert (await watcher.next("queue", within=10))["payload"]["waiting"] == 1
    await watcher.close()
    await staff.send("start_chat", "")
    frame = await staff.next()
    while frame["type"] not in ("info", "error", "new_chat"):
        frame = await staff.next()
    assert frame == {"type": "error", "payload": {"message": "you may no longer take requests"}}
    await staff.close()
