"""RedisBus beyond the contract: it survives Redis forgetting its streams and groups."""

from __future__ import annotations

import uuid

from aidpost.core.bus import Event, RedisBus
from tests.conftest import REDIS_URL, drop_redis_keys, require


async def test_a_lost_group_is_made_again() -> None:
    require("redis")
    prefix = f"aidpost-test-{uuid.uuid4().hex[:8]}:"
    bus = RedisBus(REDIS_URL, prefix=prefix)
    try:
        await bus.publish("s", [Event("t.v1", {"n": 1})])
        assert [d.event.data for d in await bus.read("s", "g", "c", block_ms=10)] == [{"n": 1}]
        drop_redis_keys(prefix)  # what a restart without persistence does
        await bus.publish("s", [Event("t.v1", {"n": 2})])
        got = []
        for _ in range(3):
            got += [d.event.data for d in await bus.read("s", "g", "c", block_ms=10)]
        assert got == [{"n": 2}]
    finally:
        await bus.close()
        drop_redis_keys(prefix)
