"""Update channels: fire-and-forget fan-out from consumers to the gateways holding sockets.

Channels are per user (``u:organizer:7``, ``u:participant:3``), per gateway (replies to one
connection) and per agency (queue counts). A gateway subscribes only to the channels of the
users connected to it. Delivery is at-most-once (Redis pub/sub drops what a slow or
disconnected subscriber misses); the messenger's per-chat sequence numbers let gateways see
a gap and backfill from the database, which is the record.

Two adapters: ``MemoryHub`` (one process) and ``RedisHub`` (Redis pub/sub).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, Protocol

log = logging.getLogger("aidpost.hub")

Listener = Callable[[str, bytes], None]


class Hub(Protocol):
    async def publish(self, items: Sequence[tuple[str, bytes]]) -> None: ...

    async def subscribe(self, channel: str, listener: Listener) -> None: ...

    async def unsubscribe(self, channel: str, listener: Listener) -> None: ...

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        """Called after the hub lost and regained its connection (updates may be lost)."""
        ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class _Listeners:
    def __init__(self) -> None:
        self.by_channel: dict[str, list[Listener]] = defaultdict(list)

    def add(self, channel: str, listener: Listener) -> bool:
        """True if this is the channel's first listener."""
        first = channel not in self.by_channel
        self.by_channel[channel].append(listener)
        return first

    def remove(self, channel: str, listener: Listener) -> bool:
        """True if the channel has no listener left."""
        listeners = self.by_channel.get(channel)
        if not listeners:
            return False
        with contextlib.suppress(ValueError):
            listeners.remove(listener)
        if not listeners:
            del self.by_channel[channel]
            return True
        return False

    def dispatch(self, channel: str, data: bytes) -> None:
        for listener in list(self.by_channel.get(channel, ())):
            try:
                listener(channel, data)
            except Exception:
                log.exception("hub listener failed", extra={"channel": channel})


class MemoryHub:
    def __init__(self) -> None:
        self._listeners = _Listeners()

    async def publish(self, items: Sequence[tuple[str, bytes]]) -> None:
        for channel, data in items:
            self._listeners.dispatch(channel, data)

    async def subscribe(self, channel: str, listener: Listener) -> None:
        self._listeners.add(channel, listener)

    async def unsubscribe(self, channel: str, listener: Listener) -> None:
        self._listeners.remove(channel, listener)

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        return None

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None


class RedisHub:
    """Redis pub/sub; one connection for publishing, one for this process's subscriptions."""

    def __init__(self, url: str, prefix: str = "aidpost:") -> None:
        from aidpost.core.bus import redis_client

        self._redis: Any = redis_client(url)
        self._prefix = prefix.encode()
        self._listeners = _Listeners()
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._reconnect_callbacks: list[Callable[[], None]] = []
        self._lock = asyncio.Lock()
        self._confirmations: dict[bytes, asyncio.Event] = {}
        self._live = False  # subscribed once: every later connect is a reconnect
        self._lost_logged = -math.inf  # while Redis is away, its loss is said every 30 s

    def _key(self, channel: str) -> bytes:
        return self._prefix + channel.encode()

    async def publish(self, items: Sequence[tuple[str, bytes]]) -> None:
        if not items:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for channel, data in items:
                pipe.publish(self._key(channel), data)
            await pipe.execute()

    async def _ensure_reader(self) -> None:
        if self._pubsub is None:
            self._pubsub = self._redis.pubsub()
            self._reader = asyncio.create_task(self._read(), name="hub-reader")

    async def subscribe(self, channel: str, listener: Listener) -> None:
        """Returns once Redis confirmed the subscription: what is published after that
        reaches the listener (a caller may then read state without missing an update)."""
        async with self._lock:
            await self._ensure_reader()
            if not self._listeners.add(channel, listener):
                return
            key = self._key(channel)
            confirmed = self._confirmations[key] = asyncio.Event()
            try:
                try:
                    await self._pubsub.subscribe(key)
                except BaseException:
                    # Not subscribed: forget the listener too, or the next subscribe of the
                    # channel would believe it is (and a reconnect would not renew it).
                    self._listeners.remove(channel, listener)
                    raise
                # redis-py reconnects and resubscribes by itself, silently: hear of it.
                self._pubsub.connection.register_connect_callback(self._on_connected)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(confirmed.wait(), 2.0)
            finally:
                self._confirmations.pop(key, None)
            self._live = True

    def _on_connected(self, _connection: Any) -> None:
        """The subscription connection was (re)established; on a reconnect, whatever was
        published while it was down is gone, so listeners are told to resynchronise."""
        if not self._live:
            return
        self._lost_logged = -math.inf  # the next loss is said at once
        log.warning("hub reconnected; updates may have been lost")
        for callback in self._reconnect_callbacks:
            try:
                callback()
            except Exception:
                log.exception("hub reconnect callback failed")

    async def unsubscribe(self, channel: str, listener: Listener) -> None:
        async with self._lock:
            if self._listeners.remove(channel, listener) and self._pubsub is not None:
                await self._pubsub.unsubscribe(self._key(channel))

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        self._reconnect_callbacks.append(callback)

    async def _read(self) -> None:
        cut = len(self._prefix)
        while True:
            try:
                if not self._pubsub.subscribed:
                    await asyncio.sleep(0.05)
                    continue
                # Blocks until something comes (a timeout here costs a timer per message).
                message = await self._pubsub.get_message(timeout=None)
                if message is None:
                    continue
                if message.get("type") == "subscribe":
                    confirmed = self._confirmations.get(bytes(message["channel"]))
                    if confirmed is not None:
                        confirmed.set()
                    continue
                if message.get("type") != "message":
                    continue
                channel = bytes(message["channel"])[cut:].decode()
                self._listeners.dispatch(channel, bytes(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception:
                # redis-py reconnects and resubscribes on the next call (``_on_connected``
                # then tells the listeners).
                if time.monotonic() - self._lost_logged >= 30:  # not once per try
                    log.warning("hub connection lost; reconnecting", exc_info=True)
                    self._lost_logged = time.monotonic()
                await asyncio.sleep(0.5)

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except Exception:
            return False

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        await self._redis.aclose()


def create_hub(url: str, prefix: str = "aidpost:") -> Hub:
    if url.startswith("memory:"):
        return MemoryHub()
    return RedisHub(url, prefix)
