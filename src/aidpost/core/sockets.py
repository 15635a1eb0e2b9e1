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

And ``Frames`` sends text frames that queue up for one socket in one write (one system
call, one pass through the checks) instead of one ASGI message each.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState

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

    async def send_texts(self, texts: Sequence[str]) -> None:
        """What ``send`` does for a ``websocket.send`` of each text, in one write."""
        await self.writable.wait()
        if (
            self.disconnected
            or self.close_sent
            or not self.handshake_complete
            or self.initial_response is not None
        ):
            raise ClientDisconnected()
        try:
            for text in texts:
                self.conn.send_text(text.encode())
        except InvalidState:
            raise ClientDisconnected() from None
        self.transport.write(b"".join(self.conn.data_to_send()))


class Frames:
    """Text frames on their way to one accepted socket: ``add`` keeps them, ``flush`` sends
    them, in order, in one write when the server is ``aidpost serve``'s (one ASGI message
    each otherwise). A socket gone raises ``WebSocketDisconnect``, as ``send_text`` does."""

    __slots__ = ("_protocol", "_size", "_ws", "pending")
    # A flush is due at this many frames or characters (uvicorn's flow control is looked
    # at once per flush, so a batch may overshoot its high-water mark by this much).
    MAX_FRAMES = 64
    MAX_CHARS = 65_536

    def __init__(self, ws: WebSocket) -> None:
        self._ws = ws
        # Starlette keeps the server's ASGI ``send``; ours is a method of the protocol.
        protocol = getattr(getattr(ws, "_send", None), "__self__", None)
        self._protocol = protocol if isinstance(protocol, WebSocketProtocol) else None
        self.pending: list[str] = []
        self._size = 0

    @property
    def one_write(self) -> bool:
        """Whether a flush is one write (the server is ``aidpost serve``'s)."""
        return self._protocol is not None

    @property
    def full(self) -> bool:
        return len(self.pending) >= self.MAX_FRAMES or self._size >= self.MAX_CHARS

    def add(self, text: str) -> None:
        self.pending.append(text)
        self._size += len(text)

    async def flush(self) -> None:
        if not self.pending:
            return
        texts, self.pending, self._size = self.pending, [], 0
        ws = self._ws
        if self._protocol is None or ws.application_state is not WebSocketState.CONNECTED:
            for text in texts:
                await ws.send_text(text)
            return
        try:
            await self._protocol.send_texts(texts)
        except OSError:
            ws.application_state = WebSocketState.DISCONNECTED
            raise WebSocketDisconnect(code=1006) from None
