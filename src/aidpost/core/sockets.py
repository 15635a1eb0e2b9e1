"""The WebSocket protocol ``aidpost serve`` gives uvicorn, and its light queue.

uvicorn's sans-I/O WebSocket protocol (on the ``websockets`` library's state machine, no
task of its own per socket besides the application's) with what an idle socket keeps made
smaller, since a gateway holds tens of thousands of them (docs/performance.md, idle
connections):

* the opening handshake is let go once the socket is accepted: uvicorn keeps the parsed
  request and the response it answered with for the socket's whole life, a few KiB of
  header objects that nothing reads again;
* the queue of received events and the "may write" flag are a deque made on demand and a
  future made while someone waits, instead of ``asyncio.Queue`` (four deques and an
  event, ~3 KiB) and ``asyncio.Event`` (a deque). They behave the same for the one reader
  and the one writer uvicorn has per socket.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, Generic, TypeVar

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

T = TypeVar("T")


class Inbox(Generic[T]):
    """A FIFO for one consumer, ``asyncio.Queue``'s ``put_nowait``/``get``/``empty``
    without its four deques and event, and no deque at all while empty: uvicorn's queue of
    received events, and the gateway's outbound frames per socket (bounded, and woken by
    its sweeper to retire an idle writer)."""

    __slots__ = ("_items", "_maxsize", "_waiter")

    def __init__(self, maxsize: int = 0) -> None:
        self._items: collections.deque[T] | None = None
        self._maxsize = maxsize  # 0: unbounded
        self._waiter: asyncio.Future[None] | None = None

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def put_nowait(self, item: T) -> None:
        if self._items is None:
            self._items = collections.deque()
        elif self._maxsize and len(self._items) >= self._maxsize:
            raise asyncio.QueueFull
        self._items.append(item)
        self.wake()

    def wake(self) -> None:
        """Wake the consumer waiting in ``get``: with nothing queued, it gets None."""
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> T | None:
        """The next item; None only if ``wake`` was called with nothing queued."""
        if not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
            if not self._items:
                return None
        item = self._items.popleft()
        if not self._items:
            self._items = None
        return item


class Flag:
    """``asyncio.Event``'s ``set``/``clear``/``is_set``/``wait``, with one future shared by
    its waiters, made only while the flag is down."""

    __slots__ = ("_up", "_waiter")

    def __init__(self) -> None:
        self._up = False
        self._waiter: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        return self._up

    def set(self) -> None:
        self._up = True
        if self._waiter is not None:
            if not self._waiter.done():
                self._waiter.set_result(None)
            self._waiter = None

    def clear(self) -> None:
        self._up = False

    async def wait(self) -> bool:
        if not self._up:
            if self._waiter is None:
                self._waiter = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._waiter)
        return True


class WebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox[Any]()  # type: ignore[assignment]  # uvicorn never wakes it
        self.writable = Flag()  # type: ignore[assignment]
        self.writable.set()

    async def send(self, message: Any) -> None:
        await super().send(message)
        if self.handshake_complete and "response" in self.__dict__:
            # Read only while answering the handshake (``handle_connect``, the accept).
            del self.request, self.response
