"""Updates lost by pub/sub are recovered for ESME's clients too.

ESME's organizer UI learns of a chat it started only from ``new_chat``, and of a chat's end
only from ``closed_chat``; it sends no sequence numbers to resume from. Redis drops a
subscriber that falls behind, and what is published until it is back is gone: the gateway
notices the reconnect, compares each socket's chats with the database and sends the
``new_chat`` / ``closed_chat`` / messages it missed, once.

The staff member has two devices: one on gateway 1, which is frozen (SIGSTOP) while its
Redis subscription is cut, and one on the main process, which starts and closes the chat.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import REDIS_URL, Databases, drop_redis_keys, require
from tests.contract.server import PIDS, seed_demo, serve
from tests.messenger.client import Client
from tests.messenger.test_chat_flow import World
from tests.messenger.test_scale_out import _env


async def frames_for(client: Client, seconds: float) -> list[dict[str, Any]]:
    got = list(client.frames)
    client.frames.clear()
    deadline = asyncio.get_running_loop().time() + seconds
    while (remaining := deadline - asyncio.get_running_loop().time()) > 0:
        try:
            got.append(await client.next(within=remaining))
        except TimeoutError:
            break
    return got


async def while_frozen(pid: int, act: Any) -> None:
    """Freeze the process, cut every pub/sub connection (as Redis does to a subscriber
    that falls behind), act, wait until the act's updates are published, thaw."""
    os.kill(pid, signal.SIGSTOP)
    try:
        redis.Redis.from_url(REDIS_URL).client_kill_filter(_type="pubsub")
        await act()
    finally:
        os.kill(pid, signal.SIGCONT)


def gateway_apart(
    env: dict[str, str], tmp_path: Path, stack: ExitStack, name: str, **gateway: str
) -> tuple[str, str]:
    """The demo seeded, every component in one process, and a messenger gateway of its
    own (data folder ``name``, environment ``env`` with ``gateway`` over it): both URLs."""
    seed_demo(env, tmp_path / "seed")
    for folder in ("all", name):
        (tmp_path / folder).mkdir()
    base = stack.enter_context(serve(tmp_path / "all", env))
    gateway_env = {
        **env,
        "AIDPOST_AUTH_URL": base,
        "AIDPOST_MESSENGER_PARTICIPANT_URL": base,
        "AIDPOST_MESSENGER_ROLES": "gateway",
        **gateway,
    }
    return base, stack.enter_context(
        serve(tmp_path / name, gateway_env, "--component", "messenger")
    )


@pytest.mark.postgres
async def test_a_chat_started_and_closed_while_updates_were_lost(
    postgres: Databases, tmp_path: Path
) -> None:
    require("redis")
    prefix = f"aidpost-test-{uuid.uuid4().hex[:8]}:"
    env = _env(postgres, prefix)
    try:
        with ExitStack() as stack:
            base, gw1 = gateway_apart(env, tmp_path, stack, "gw1")
            world = World(base)
            staff_token = await world.token("organizer", "support")
            participant_token = await world.token("participant", "participant")
            desk = await Client.connect(gw1, staff_token)  # as ESME's UI: get_chats first
            assert (await desk.next("chats", within=10))["payload"]["chats"] == []
            tablet = await Client.connect(base, staff_token, get_chats=False)
            await tablet.send("hello", {"protocol": "aidpost.1"})
            await world.request_help(participant_token, "twisted ankle")
            while (await tablet.next("queue", within=10))["payload"]["waiting"] != 1:
                pass  # the request is in the agency's queue

            async def start() -> None:
                await tablet.send("start_chat", "")
                await tablet.next("new_chat", within=10)
                await tablet.next("user_message", within=10)

            await while_frozen(PIDS[gw1], start)
            got = await frames_for(desk, 4)
            kinds = [f["type"] for f in got]
            assert kinds == ["new_chat", "user_message"], kinds
            chat = got[0]["payload"]
            assert chat["participant"]["email"] == "participant@demo.aidpost.example"
            assert (got[1]["payload"]["seq"], got[1]["payload"]["content"]) == (
                1,
                "Problem description: twisted ankle",
            )

            async def talk_and_close() -> None:
                await tablet.send("send_message", {"chatId": chat["id"], "message": "on my way"})
                await tablet.next("user_message", within=10)
                await tablet.send("close_chat", {"chatId": chat["id"]})
                await tablet.next("closed_chat", within=10)

            await while_frozen(PIDS[gw1], talk_and_close)
            got = await frames_for(desk, 4)
            assert [f["type"] for f in got] == ["user_message", "closed_chat"]
            assert (got[0]["payload"]["seq"], got[0]["payload"]["content"]) == (2, "on my way")
            assert got[1]["payload"] == {"chatId": chat["id"]}
            await desk.send("get_chats", "")
            assert (await desk.next("chats"))["payload"]["chats"] == []
            await world.http.aclose()
    finally:
        drop_redis_keys(prefix)
