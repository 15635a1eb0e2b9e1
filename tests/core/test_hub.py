"""The hub (update channels) on both adapters, and RedisHub's reconnects."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis

from aidpost.core.hub import MemoryHub, RedisHub
from tests.conftest import REDIS_URL, require

AnyHub = MemoryHub | RedisHub


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def hub(request: pytest.FixtureRequest) -> AsyncIterator[AnyHub]:
    if request.param == "memory":
        yield MemoryHub()
        return
    require("redis")
    redis_hub = RedisHub(REDIS_URL, f"aidpost-test:{uuid.uuid4().hex}:")
    try:
        yield redis_hub
    finally:
        await redis_hub.close()


class Inbox:
    def __init__(self) -> None:
        self.got: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()

    def __call__(self, channel: str, data: bytes) -> None:
        self.got.put_nowait((channel, data))

    async def next(self) -> tuple[str, bytes]:
        return await asyncio.wait_for(self.got.get(), 2.0)

    async def nothing(self) -> bool:
        await asyncio.sleep(0.1)
        return self.got.empty()


async def test_a_publish_right_after_subscribe_arrives(hub: AnyHub) -> None:
    inbox = Inbox()
    await hub.subscribe("u:organizer:1", inbox)
    # subscribe returned: the subscription is in force, nothing published now is missed
    await hub.publish(
        [("u:organizer:1", b"one"), ("u:organizer:2", b"other"), ("u:organizer:1", b"two")]
    )
    assert await inbox.next() == ("u:organizer:1", b"one")
    assert await inbox.next() == ("u:organizer:1", b"two")
    assert await inbox.nothing()


async def test_every_listener_of_a_channel_gets_it_until_it_leaves(hub: AnyHub) -> None:
    first, second = Inbox(), Inbox()
    await hub.subscribe("a:1", first)
    await hub.subscribe("a:1", second)
    await hub.publish([("a:1", b"x")])
    assert (await first.next(), await second.next()) == (("a:1", b"x"), ("a:1", b"x"))
    await hub.unsubscribe("a:1", first)
    await hub.publish([("a:1", b"y")])
    assert await second.next() == ("a:1", b"y")
    assert await first.nothing()
    await hub.unsubscribe("a:1", second)
    await hub.publish([("a:1", b"z")])
    assert await second.nothing()


async def test_a_failing_listener_does_not_stop_the_others(hub: AnyHub) -> None:
    def broken(_channel: str, _data: bytes) -> None:
        raise RuntimeError("listener bug")

    inbox = Inbox()
    await hub.subscribe("c", broken)
    await hub.subscribe("c", inbox)
    await hub.publish([("c", b"still here")])
    assert await inbox.next() == ("c", b"still here")
    assert await hub.ping()


@pytest.mark.redis
async def test_a_dropped_subscription_is_noticed_and_comes_back() -> None:
    """Redis drops subscribers that fall behind, and redis-py reconnects silently: the hub
    must still say so, since what was published meanwhile is lost."""
    require("redis")
    hub = RedisHub(REDIS_URL, f"aidpost-test:{uuid.uuid4().hex}:")
    reconnected = asyncio.Event()
    hub.on_reconnect(reconnected.set)
    inbox = Inbox()
    try:
        await hub.subscribe("u:participant:9", inbox)
        await hub.publish([("u:participant:9", b"before")])
        assert await inbox.next() == ("u:participant:9", b"before")
        assert not reconnected.is_set()

        redis.Redis.from_url(REDIS_URL).client_kill_filter(_type="pubsub")
        await asyncio.wait_for(reconnected.wait(), 5)
        await asyncio.sleep(0.2)  # resubscribed
        await hub.publish([("u:participant:9", b"after")])
        assert await inbox.next() == ("u:participant:9", b"after")
    finally:
        await hub.close()


@pytest.mark.redis
async def test_a_subscription_that_failed_is_made_again_next_time() -> None:
    """Redis away at subscribe: it fails, and the hub does not believe it is subscribed (a
    second subscribe once Redis is back subscribes, and the listener hears)."""
    from tests.netcut import Cut, target, through

    require("redis")
    with Cut(target(REDIS_URL)) as cut:
        hub = RedisHub(through(REDIS_URL, cut), f"aidpost-test:{uuid.uuid4().hex}:")
        publisher = RedisHub(REDIS_URL, hub._prefix.decode())
        inbox = Inbox()
        try:
            cut.down()
            with pytest.raises(redis.exceptions.ConnectionError):
                await hub.subscribe("c", inbox)
            cut.up()
            await hub.subscribe("c", inbox)
            await publisher.publish([("c", b"hello")])
            assert await inbox.next() == ("c", b"hello")
        finally:
            await hub.close()
            await publisher.close()
