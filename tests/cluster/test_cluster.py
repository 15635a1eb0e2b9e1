"""The local cluster behind real HAProxy: chats across gateways, and a gateway killed with
kill -9 or stopped with SIGTERM while messages flow: clients reconnect through HAProxy,
resume, and end with every acknowledged message exactly once, in order."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from aidpost.cluster import Cluster
from tests.conftest import (
    ON_CI,
    REDIS_URL,
    Databases,
    drop_redis_keys,
    require,
    wait_for_redis,
)
from tests.contract.server import seed_demo
from tests.messenger.client import Client
from tests.messenger.test_chat_flow import World


@pytest.fixture
def cluster(postgres: Databases, tmp_path: Path) -> Iterator[Cluster]:
    require("redis")
    if shutil.which("haproxy") is None:
        if ON_CI:
            pytest.fail("haproxy is not installed on CI")
        pytest.skip("haproxy not installed")
    prefix = f"aidpost-test-{uuid.uuid4().hex[:8]}:"
    env = {
        "AIDPOST_BUS_PREFIX": prefix,
        "AIDPOST_RATE_LIMIT": "100000/minute",
        "AIDPOST_AUTH_ARGON2_MEMORY_KIB": "1024",
        "AIDPOST_AUTH_ARGON2_TIME_COST": "1",
        "AIDPOST_MESSENGER_PARTICIPANT_URL": "",
    }
    urls = {f"AIDPOST_{k.upper()}_DATABASE_URL": v for k, v in postgres.urls.items()}
    seed_demo({**env, **urls, "AIDPOST_BUS_URL": REDIS_URL}, tmp_path / "seed")
    c = Cluster(
        postgres.urls, REDIS_URL, gateways=2, consumers=2, workdir=tmp_path / "c", extra_env=env
    )
    try:
        c.start()
        yield c
    finally:
        c.stop()
        drop_redis_keys(prefix)


class Resilient:
    """An aidpost client that reconnects through the load balancer, resumes from the last
    sequence number it saw, and resends what was not yet acknowledged (same client id)."""

    def __init__(self, base: str, token: str, chat_id: str) -> None:
        self.base, self.token, self.chat_id = base, token, chat_id
        self.client: Client | None = None
        self.seqs: list[int] = []
        self.contents: list[str] = []
        self.unacked: dict[str, str] = {}

    async def connect(self) -> None:
        for _ in range(100):
            try:
                self.client = await Client.connect(self.base, self.token, get_chats=False)
                await self.client.send("hello", {"protocol": "aidpost.1"})
                await self.client.next("hello")
                # Until its hello is answered a socket is served as ESME's clients are: live
                # messages may come before it. The resume below covers them, in order; kept,
                # they would come first, out of order.
                self.client.frames.clear()
                last = self.seqs[-1] if self.seqs else 0
                await self.client.send("resume", {"chats": {self.chat_id: last}})
                for client_id, text in list(self.unacked.items()):
                    await self._send(client_id, text)
                return
            except (OSError, websockets.ConnectionClosed, TimeoutError):
                await asyncio.sleep(0.1)
        raise AssertionError("could not reconnect")

    async def _send(self, client_id: str, text: str) -> None:
        assert self.client is not None
        payload = {"chatId": self.chat_id, "message": text, "clientId": client_id}
        await self.client.send("send_message", payload)

    async def say(self, text: str) -> None:
        client_id = uuid.uuid4().hex
        self.unacked[client_id] = text
        try:
            await self._send(client_id, text)
        except websockets.ConnectionClosed:
            await self.connect()

    async def pump(self, until_seq: int, within: float = 30) -> None:
        deadline = asyncio.get_running_loop().time() + within
        while not self.seqs or self.seqs[-1] < until_seq:
            assert asyncio.get_running_loop().time() < deadline, (self.seqs, until_seq)
            assert self.client is not None
            try:
                frame = await self.client.next(within=2)
            except (websockets.ConnectionClosed, OSError):
                await self.connect()
                continue
            except TimeoutError:
                continue
            if frame["type"] != "user_message":
                continue
            message: dict[str, Any] = frame["payload"]
            if self.seqs and message["seq"] <= self.seqs[-1]:
                continue  # a resend answered, or a resume overlap: already have it
            self.seqs.append(message["seq"])
            self.contents.append(message["content"])
            self.unacked.pop(message.get("clientId", ""), None)


async def _chat(cluster: Cluster) -> tuple[World, str, str, str]:
    world = World(cluster.url)
    staff_token = await world.token("organizer", "support")
    participant_token = await world.token("participant", "participant")
    await world.request_help(participant_token, "crowd crush at gate 3")
    staff = await Client.connect(cluster.url, staff_token, get_chats=False)
    chat_id = (await staff.start_chat(within=30))["id"]
    await staff.close()
    return world, staff_token, participant_token, chat_id


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
async def test_gateway_lost_while_messages_flow(cluster: Cluster, how: int) -> None:
    world, staff_token, participant_token, chat_id = await _chat(cluster)
    staff = Resilient(cluster.url, staff_token, chat_id)
    phone = Resilient(cluster.url, participant_token, chat_id)
    await staff.connect()
    await phone.connect()
    sent = 0
    for i in range(30):
        await phone.say(f"p{i}")
        await staff.say(f"s{i}")
        sent += 2
        if i == 10:
            # both gateways hold sockets (least connections); lose one of them
            cluster.kill("gateway1", how)
        await asyncio.sleep(0.02)
    total = 1 + sent  # the problem description, then every message
    await asyncio.gather(staff.pump(total, 60), phone.pump(total, 60))
    for side in (staff, phone):
        assert side.seqs == list(range(1, total + 1)), "every message once, in order"
        assert not side.unacked, "every message was acknowledged"
        assert sorted(side.contents[1:]) == sorted(
            [f"p{i}" for i in range(30)] + [f"s{i}" for i in range(30)]
        )
    # The status page (through HAProxy) saw the gateway go and the rest stay.
    statuses = await _statuses_when(cluster, lambda s: s.get("gateway1") == "major_outage")
    assert {n: s for n, s in statuses.items() if n != "gateway1"} == dict.fromkeys(
        ("auth", "organizer", "participant", "consumer1", "consumer2", "gateway2", "mailer", "web",
         "postgresql", "redis"), "operational"
    )  # fmt: skip
    await world.http.aclose()


async def _statuses_when(cluster: Cluster, done: Any, seconds: float = 40) -> dict[str, str]:
    statuses: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=cluster.url) as http:
        for _ in range(int(seconds * 4)):
            body = (await http.get("/statuspage/api/v2/summary.json")).json()
            statuses = {c["id"]: c["status"] for c in body["components"] if not c["group"]}
            if done(statuses):
                return statuses
            await asyncio.sleep(0.25)
    raise AssertionError(f"the status page did not get there: {statuses}")


async def test_scaling_in_and_out_while_chatting(cluster: Cluster) -> None:
    """Add a gateway and a consumer, stop a consumer with SIGTERM, all while both sides
    send: nothing is lost and nothing doubled."""
    world, staff_token, participant_token, chat_id = await _chat(cluster)
    staff = Resilient(cluster.url, staff_token, chat_id)
    phone = Resilient(cluster.url, participant_token, chat_id)
    await staff.connect()
    await phone.connect()
    for i in range(30):
        await phone.say(f"p{i}")
        await staff.say(f"s{i}")
        if i == 5:
            await asyncio.to_thread(cluster.add_gateway)
        if i == 10:
            await asyncio.to_thread(
                cluster.add, "consumer3", "messenger", AIDPOST_MESSENGER_ROLES="consumer"
            )
        if i == 15:
            assert await asyncio.to_thread(cluster.kill, "consumer1", signal.SIGTERM) in (0, -15)
        await asyncio.sleep(0.02)
    await asyncio.gather(staff.pump(61, 60), phone.pump(61, 60))
    for side in (staff, phone):
        assert side.seqs == list(range(1, 62)), "every message once, in order"
    await world.http.aclose()


class RedisServer:
    """A Redis of the test's own on a free port, so that it can be restarted."""

    def __init__(self, workdir: Path) -> None:
        from aidpost.cluster import free_port

        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_redis(self.url)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


async def test_redis_restart_loses_no_acknowledged_message(
    postgres: Databases, tmp_path: Path
) -> None:
    """Redis restarts (and, without persistence, forgets streams, groups and subscribers):
    PostgreSQL is the record, gateways resynchronise, clients resend what was not
    acknowledged; both sides end with every message once, in order."""
    if shutil.which("haproxy") is None or shutil.which("redis-server") is None:
        if ON_CI:
            pytest.fail("haproxy and redis-server are needed on CI")
        pytest.skip("haproxy or redis-server not installed")
    own = RedisServer(tmp_path)
    own.start()
    env = {
        "AIDPOST_RATE_LIMIT": "100000/minute",
        "AIDPOST_AUTH_ARGON2_MEMORY_KIB": "1024",
        "AIDPOST_AUTH_ARGON2_TIME_COST": "1",
    }
    urls = {f"AIDPOST_{k.upper()}_DATABASE_URL": v for k, v in postgres.urls.items()}
    seed_demo({**env, **urls, "AIDPOST_BUS_URL": own.url}, tmp_path / "seed")
    c = Cluster(
        postgres.urls, own.url, gateways=2, consumers=1, workdir=tmp_path / "c", extra_env=env
    )
    try:
        c.start()
        world, staff_token, participant_token, chat_id = await _chat(c)
        staff = Resilient(c.url, staff_token, chat_id)
        phone = Resilient(c.url, participant_token, chat_id)
        await staff.connect()
        await phone.connect()
        for i in range(10):
            await phone.say(f"before {i}")
        await asyncio.gather(staff.pump(11), phone.pump(11))
        own.stop()
        own.start()
        for i in range(10):
            await phone.say(f"after {i}")
            await staff.say(f"reply {i}")
            await asyncio.sleep(0.05)
        await asyncio.gather(staff.pump(31, 90), phone.pump(31, 90))
        for side in (staff, phone):
            assert side.seqs == list(range(1, 32)), "every message once, in order"
        await world.http.aclose()
    finally:
        c.stop()
        own.stop()


async def test_the_console_works_through_haproxy(cluster: Cluster) -> None:
    """The web process calls the APIs through the load balancer, as any client would."""
    from tests.web.conftest import Visitor

    async with httpx.AsyncClient(base_url=cluster.url, timeout=10) as client:
        visitor = Visitor(client)
        await visitor.sign_in("owner@demo.aidpost.example", "demo-password-1234")
        page = await visitor.get("/console/events")
        assert page.status_code == 200, page.text
        assert "<table>" in page.text and "/console/events/" in page.text
        assert (await client.get("/web/static/material.css")).status_code == 200
