"""The messenger scaled out: auth, organizer, participant, one consumer and two gateways as
separate processes on PostgreSQL and Redis. A participant on one gateway and staff on the
other chat; killing the consumer with kill -9 loses no command."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from contextlib import ExitStack
from pathlib import Path

import pytest

from aidpost.messenger.gateway import BUSY
from tests.conftest import REDIS_URL, Databases, drop_redis_keys, require
from tests.contract.server import seed_demo, serve
from tests.messenger.client import Client
from tests.messenger.test_chat_flow import World


def _env(databases: Databases, prefix: str) -> dict[str, str]:
    return {
        "AIDPOST_AUTH_DATABASE_URL": databases.urls["auth"],
        "AIDPOST_ORGANIZER_DATABASE_URL": databases.urls["organizer"],
        "AIDPOST_PARTICIPANT_DATABASE_URL": databases.urls["participant"],
        "AIDPOST_MESSENGER_DATABASE_URL": databases.urls["messenger"],
        "AIDPOST_MAILER_DATABASE_URL": databases.urls["mailer"],
        "AIDPOST_BUS_URL": REDIS_URL,
        "AIDPOST_BUS_PREFIX": prefix,
        "AIDPOST_RATE_LIMIT": "100000/minute",
        "AIDPOST_AUTH_ARGON2_MEMORY_KIB": "1024",
        "AIDPOST_AUTH_ARGON2_TIME_COST": "1",
    }


def consumers_apart(
    env: dict[str, str], tmp_path: Path, stack: ExitStack, *names: str
) -> tuple[str, dict[str, str]]:
    """The demo seeded, then every component in one process but the messenger's consumers,
    which the test starts as processes of their own (one data folder each, ``names``):
    the base URL and the consumers' environment."""
    seed_demo(env, tmp_path / "seed")
    for name in ("all", *names):
        (tmp_path / name).mkdir()
    base = stack.enter_context(
        serve(tmp_path / "all", {**env, "AIDPOST_MESSENGER_ROLES": "gateway"})
    )
    return base, {**env, "AIDPOST_AUTH_URL": base, "AIDPOST_MESSENGER_ROLES": "consumer"}


@pytest.mark.postgres
async def test_two_gateways_one_consumer(postgres: Databases, tmp_path: Path) -> None:
    require("redis")
    prefix = f"aidpost-test-{uuid.uuid4().hex[:8]}:"
    env = _env(postgres, prefix)
    seed_demo(env, tmp_path / "seed")
    dirs = {name: tmp_path / name for name in ("auth", "org", "part", "cons", "gw1", "gw2")}
    for d in dirs.values():
        d.mkdir()
    try:
        with ExitStack() as stack:
            auth = stack.enter_context(serve(dirs["auth"], env, "--component", "auth"))
            remote = {**env, "AIDPOST_AUTH_URL": auth}
            organizer = stack.enter_context(serve(dirs["org"], remote, "--component", "organizer"))
            participant = stack.enter_context(
                serve(dirs["part"], remote, "--component", "participant")
            )
            messenger = {**remote, "AIDPOST_MESSENGER_PARTICIPANT_URL": participant}
            consumer_env = {**messenger, "AIDPOST_MESSENGER_ROLES": "consumer"}
            stack.enter_context(serve(dirs["cons"], consumer_env, "--component", "messenger"))
            gateway_env = {**messenger, "AIDPOST_MESSENGER_ROLES": "gateway"}
            gw1 = stack.enter_context(serve(dirs["gw1"], gateway_env, "--component", "messenger"))
            gw2 = stack.enter_context(serve(dirs["gw2"], gateway_env, "--component", "messenger"))

            world = World(auth)
            staff_token = await world.token("organizer", "support")
            participant_token = await world.token("participant", "participant")
            world.base = participant
            # the staff read model in the messenger fills through the bus
            world.http.base_url = gw1  # type: ignore[assignment]
            for _ in range(100):
                headers = {"Authorization": f"Bearer {staff_token}"}
                if (
                    await world.http.get("/messenger-api/agency/chats", headers=headers)
                ).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            world.http.base_url = participant  # type: ignore[assignment]
            await world.request_help(participant_token, "I need security assistance")

            staff = await Client.connect(gw1, staff_token, get_chats=False)
            new_chat = await staff.start_chat(within=20)
            assert new_chat["participant"]["email"] == "participant@demo.aidpost.example"
            chat_id = new_chat["id"]
            phone = await Client.connect(gw2, participant_token, get_chats=False)
            await asyncio.sleep(0.3)  # gw2 subscribed to the participant's channel
            for i in range(20):
                await phone.send("send_message", {"chatId": chat_id, "message": f"p{i}"})
                await staff.send("send_message", {"chatId": chat_id, "message": f"s{i}"})
            for client in (phone, staff):
                got = []
                while len(got) < 40:
                    frame = (await client.next("user_message", within=20))["payload"]
                    if frame["seq"] > 1:
                        got.append(frame["seq"])
                assert got == list(range(2, 42)), "every message once, in order, on both gateways"
            assert organizer
            await world.http.aclose()
    finally:
        drop_redis_keys(prefix)


@pytest.mark.postgres
async def test_consumer_killed_after_commit_loses_and_doubles_nothing(
    postgres: Databases, tmp_path: Path
) -> None:
    """The consumer dies (as kill -9) after storing a batch and before acking or publishing
    it; its replacement claims the batch, stores nothing twice and delivers what was stored."""
    require("redis")
    prefix = f"aidpost-test-{uuid.uuid4().hex[:8]}:"
    env = {**_env(postgres, prefix), "AIDPOST_AUTH_ARGON2_MEMORY_KIB": "1024"}
    try:
        with ExitStack() as stack:
            base, consumer = consumers_apart(env, tmp_path, stack, "c1", "c2")
            world = World(base)
            staff_token = await world.token("organizer", "support")
            participant_token = await world.token("participant", "participant")
            await world.request_help(participant_token, "fire")
            with serve(tmp_path / "c1", consumer, "--component", "messenger"):
                staff_token = await world.token("organizer", "support")  # read model filled
                staff = await Client.connect(base, staff_token, get_chats=False)
                chat_id = (await staff.start_chat(within=20))["id"]
                await staff.next("user_message")
            doomed = {**consumer, "AIDPOST_FAULTS": "messenger.after_commit=exit"}
            dying = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "aidpost.cli", "serve", "--component", "messenger",
                "--port", "0",
                env={**os.environ, **doomed, "AIDPOST_DATA_DIR": str(tmp_path / "c2")},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            await asyncio.sleep(2)
            await staff.send("send_message", {"chatId": chat_id, "message": "stored, then died"})
            assert await asyncio.wait_for(dying.wait(), 30) == 137
            # a new consumer claims the unacknowledged batch once it has been idle 5 s
            stack.enter_context(serve(tmp_path / "c1", consumer, "--component", "messenger"))
            got = (await staff.next("user_message", within=30))["payload"]
            assert (got["content"], got["seq"]) == ("stored, then died", 2)
            await staff.send("get_chat_history", {"chatId": chat_id})
            history = (await staff.next("chat_history"))["payload"]["messages"]
            assert [m["content"] for m in history].count("stored, then died") == 1
            await world.http.aclose()
    finally:
        drop_redis_keys(prefix)


@pytest.mark.postgres
async def test_two_consumers_keep_each_chats_order(postgres: Databases, tmp_path: Path) -> None:
    """Two consumer processes, small batches, both sides sending as fast as they can: the
    stored order (``seq``) of each side's messages is the order it sent them."""
    require("redis")
    prefix = f"aidpost-test-{uuid.uuid4().hex[:8]}:"
    env = {
        **_env(postgres, prefix),
        "AIDPOST_MESSENGER_ACTIONS_PER_SECOND": "10000",
        "AIDPOST_MESSENGER_ACTIONS_BURST": "10000",
        "AIDPOST_MESSENGER_CONSUMER_BATCH": "3",
        "AIDPOST_MESSENGER_CONSUMER_LEASE_MS": "1000",
    }
    try:
        with ExitStack() as stack:
            base, consumer = consumers_apart(env, tmp_path, stack, "c1", "c2")
            for name in ("c1", "c2"):
                stack.enter_context(serve(tmp_path / name, consumer, "--component", "messenger"))
            world = World(base)
            staff_token = await world.token("organizer", "support")
            participant_token = await world.token("participant", "participant")
            await world.request_help(participant_token, "lost child")
            await asyncio.sleep(1.5)  # both consumers hold their share of the shards
            staff = await Client.connect(base, staff_token, get_chats=False)
            chat_id = (await staff.start_chat(within=20))["id"]
            phone = await Client.connect(base, participant_token, get_chats=False)
            await asyncio.sleep(0.3)
            n = 150
            for i in range(n):
                await phone.send("send_message", {"chatId": chat_id, "message": f"p{i}"})
                await staff.send("send_message", {"chatId": chat_id, "message": f"s{i}"})
            history: list[dict[str, object]] = []
            for _ in range(50):
                await asyncio.sleep(0.2)
                await staff.send("get_chat_history", {"chatId": chat_id})
                history = (await staff.next("chat_history", within=10))["payload"]["messages"]
                if len(history) == 2 * n + 1:
                    break
            contents = [str(m["content"]) for m in history[1:]]
            assert [m["seq"] for m in history] == list(range(1, 2 * n + 2))
            assert [c for c in contents if c[0] == "p"] == [f"p{i}" for i in range(n)]
            assert [c for c in contents if c[0] == "s"] == [f"s{i}" for i in range(n)]
            await world.http.aclose()
    finally:
        drop_redis_keys(prefix)


@pytest.mark.postgres
async def test_an_overloaded_shard_refuses_commands_and_loses_none(
    postgres: Databases, tmp_path: Path
) -> None:
    """No consumer runs, so the (one) shard's backlog reaches its limit: the gateway refuses
    further commands with a busy error (aidpost's clients are told which message and when to
    send it again) instead of queueing them past what the bus keeps. Once a consumer is back,
    every command taken is stored and delivered in order, and sends are taken again."""
    require("redis")
    prefix = f"aidpost-test-{uuid.uuid4().hex[:8]}:"
    env = {
        **_env(postgres, prefix),
        "AIDPOST_MESSENGER_COMMAND_SHARDS": "1",
        "AIDPOST_MESSENGER_COMMAND_BACKLOG_LIMIT": "3",
        "AIDPOST_MESSENGER_BACKLOG_CHECK_SECONDS": "0.1",
    }
    try:
        with ExitStack() as stack:
            base, consumer = consumers_apart(env, tmp_path, stack, "c1")
            world = World(base)
            participant_token = await world.token("participant", "participant")
            await world.request_help(participant_token, "twisted ankle")
            with serve(tmp_path / "c1", consumer, "--component", "messenger"):
                staff_token = await world.token("organizer", "support")
                staff = await Client.connect(base, staff_token, get_chats=False)
                chat_id = (await staff.start_chat(within=20))["id"]
                await staff.next("user_message")
            phone = await Client.connect(base, participant_token, get_chats=False)
            tablet = await Client.connect(base, participant_token, get_chats=False)
            await tablet.send("hello", {"protocol": "aidpost.1"})
            await tablet.next("hello")
            await asyncio.sleep(0.5)  # the gateway has read the backlog: nothing waits
            for i in range(3):
                await phone.send("send_message", {"chatId": chat_id, "message": f"m{i}"})
            await phone.send("send_message", {"chatId": chat_id, "message": "refused"})
            assert (await phone.next("error"))["payload"] == {"message": BUSY}
            body = {"chatId": chat_id, "message": "later", "clientId": "t-1"}
            await tablet.send("send_message", body)
            busy = (await tablet.next("error"))["payload"]
            assert busy == {"message": BUSY, "code": "busy", "clientId": "t-1", "retryMs": 1000}
            await staff.send("close_chat", {"chatId": chat_id})
            assert (await staff.next("error"))["payload"] == {"message": BUSY}

            stack.enter_context(serve(tmp_path / "c1", consumer, "--component", "messenger"))
            got = [(await staff.next("user_message", within=30))["payload"] for _ in range(3)]
            assert [(m["content"], m["seq"]) for m in got] == [("m0", 2), ("m1", 3), ("m2", 4)]
            for _ in range(50):  # taken again once the gateway has seen the backlog go
                await asyncio.sleep(0.2)
                await tablet.send("send_message", body)
                try:
                    await tablet.next("error", within=1)
                except TimeoutError:
                    break
            later = (await staff.next("user_message", within=30))["payload"]
            assert (later["content"], later["seq"], later["clientId"]) == ("later", 5, "t-1")
            await staff.send("get_chat_history", {"chatId": chat_id})
            history = (await staff.next("chat_history"))["payload"]["messages"]
            assert [m["content"] for m in history][1:] == ["m0", "m1", "m2", "later"]
            assert [m["seq"] for m in history] == [1, 2, 3, 4, 5]
            await world.http.aclose()
    finally:
        drop_redis_keys(prefix)
