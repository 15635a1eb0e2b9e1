"""A gateway whose database or bus goes away keeps its sockets: commands are answered
"unavailable" (with a retry hint and the message's client id for aidpost's clients), a
read a socket's state depends on is answered so and the socket ended with 1013 (the
client reconnects and reads again), reads its sockets' writers need are tried again until
the database is back, and nothing is missed or sent twice. Sockets that cannot be
authenticated or subscribed meanwhile are closed with 1013 (try again later). Found in
ESME's scenario at 2,000 sockets: a database out of connections turned every socket's
resynchronisation into a closed socket, and a ``get_chats`` into an exception in the ASGI
application.

The gateway is a process of its own whose messenger database and Redis are reached through
forwarders the test cuts (``tests/netcut.py``); the rest of aidpost runs in another
process with both, so what the participant and the tablet do is stored meanwhile."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import websockets

from aidpost.messenger.gateway import UNAVAILABLE
from tests.conftest import Databases, drop_redis_keys, require
from tests.messenger.client import Client
from tests.messenger.test_chat_flow import World
from tests.messenger.test_lost_updates import frames_for, gateway_apart
from tests.messenger.test_scale_out import _env
from tests.netcut import Cut, target, through


def unavailable(frame: dict[str, Any]) -> bool:
    return frame["type"] == "error" and frame["payload"]["message"] == UNAVAILABLE


async def closed_with(client: Client, within: float = 10) -> int | None:
    try:
        while True:
            await asyncio.wait_for(client.ws.recv(), within)
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


@pytest.mark.postgres
async def test_a_gateway_keeps_its_sockets_while_its_database_and_bus_are_away(
    postgres: Databases, tmp_path: Path
) -> None:
    require("redis")
    prefix = f"aidpost-test-{uuid.uuid4().hex[:8]}:"
    env = _env(postgres, prefix)
    messenger_db, bus = env["AIDPOST_MESSENGER_DATABASE_URL"], env["AIDPOST_BUS_URL"]
    try:
        with ExitStack() as stack:
            db_cut = stack.enter_context(Cut(target(messenger_db)))
            bus_cut = stack.enter_context(Cut(target(bus)))
            base, gw = gateway_apart(
                env, tmp_path, stack, "gw",
                AIDPOST_MESSENGER_DATABASE_URL=through(messenger_db, db_cut),
                AIDPOST_BUS_URL=through(bus, bus_cut),
            )  # fmt: skip
            world = World(base)
            staff_token = await world.token("organizer", "support")
            participant_token = await world.token("participant", "participant")
            desk = await Client.connect(gw, staff_token)  # ESME's organizer UI
            assert (await desk.next("chats", within=10))["payload"]["chats"] == []
            phone = await Client.connect(gw, participant_token, get_chats=False)  # aidpost's
            await phone.send("hello", {"protocol": "aidpost.1"})
            await phone.next("hello", within=10)
            tablet = await Client.connect(base, staff_token, get_chats=False)
            await world.request_help(participant_token, "twisted ankle")
            chat = await tablet.start_chat()
            for client in (desk, phone):
                assert (await client.next("user_message", within=10))["payload"]["seq"] == 1

            # The database away: a read is answered "unavailable", then the socket ends with
            # 1013 (its state depends on that read), and the client comes back for it.
            db_cut.down()
            await desk.send("get_chats", "")
            assert unavailable(await desk.next("error", within=10))
            assert await closed_with(desk) == 1013
            await phone.send("get_chat_history", {"chatId": chat["id"]})
            assert unavailable(refused := await phone.next("error", within=10))
            assert refused["payload"]["code"] == "unavailable"
            assert refused["payload"]["retryMs"] >= 100
            assert await closed_with(phone) == 1013
            # a new staff socket cannot be checked: try again later (not refused: 1008)
            late = await Client.connect(gw, staff_token, get_chats=False)
            assert await closed_with(late) == 1013
            db_cut.up()
            desk = await Client.connect(gw, staff_token)
            assert [c["id"] for c in (await desk.next("chats", within=10))["payload"]["chats"]] == [
                chat["id"]
            ]
            await desk.send("get_chat_history", {"chatId": chat["id"]})  # as ESME's UI does
            assert len((await desk.next("chat_history", within=10))["payload"]["messages"]) == 1
            phone = await Client.connect(gw, participant_token, get_chats=False)
            await phone.send("hello", {"protocol": "aidpost.1"})
            await phone.next("hello", within=10)
            await phone.send("resume", {"chats": {chat["id"]: 1}})  # as chat.js does
            await phone.next("resumed", within=10)

            # The bus away: a message cannot be taken; the phone is told which, and when.
            bus_cut.down()
            message = {"chatId": chat["id"], "message": "still there?", "clientId": "p-1"}
            await phone.send("send_message", message)
            refused = await phone.next("error", within=30)
            assert unavailable(refused), refused
            assert refused["payload"]["clientId"] == "p-1"
            # Both away; the tablet talks meanwhile (stored by the other process).
            db_cut.down()
            await tablet.send("send_message", {"chatId": chat["id"], "message": "on my way"})
            while (await tablet.next("user_message", within=10))["payload"]["seq"] != 2:
                pass  # the first message, set aside while the tablet started the chat
            # The bus back first: the gateway's hub reconnects and resynchronises its sockets
            # from a database still away; their writers wait for it instead of closing.
            log = tmp_path / "gw" / "server.log"
            reconnects = log.read_text().count("hub reconnected")
            bus_cut.up()
            for _ in range(300):
                if log.read_text().count("hub reconnected") > reconnects:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the gateway's hub did not reconnect")
            await asyncio.sleep(1)  # its sockets' writers meet the database away
            db_cut.up()
            for client in (desk, phone):
                got = [f for f in await frames_for(client, 8) if f["type"] == "user_message"]
                assert [(m["payload"]["seq"], m["payload"]["content"]) for m in got] == [
                    (2, "on my way")
                ], got
            # The phone's message, sent again as chat.js would, is taken now.
            await phone.send("send_message", message)
            assert (await phone.next("user_message", within=10))["payload"]["seq"] == 3
            assert (await desk.next("user_message", within=10))["payload"]["seq"] == 3
            for client in (desk, phone, tablet):
                await client.close()
            await world.http.aclose()
        said = (tmp_path / "gw" / "server.log").read_text()
        assert "Exception in ASGI application" not in said
        assert "connection writer failed" not in said
    finally:
        drop_redis_keys(prefix)
