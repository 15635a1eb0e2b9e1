"""Fixtures of the core tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from aidpost.core.bus import MemoryBus, RedisBus
from tests.conftest import REDIS_URL, require

AnyBus = MemoryBus | RedisBus


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[AnyBus]:
    """Each test once per bus adapter; the Redis run under a key prefix of its own (database
    15), deleted afterwards."""
    if request.param == "memory":
        memory = MemoryBus()
        yield memory
        await memory.close()
        return
    require("redis")
    prefix = f"aidpost-test:{uuid.uuid4().hex}:"
    redis_bus = RedisBus(REDIS_URL, prefix=prefix)
    try:
        yield redis_bus
    finally:
        keys = [key async for key in redis_bus._redis.scan_iter(match=prefix + "*")]
        if keys:
            await redis_bus._redis.delete(*keys)
        await redis_bus.close()
