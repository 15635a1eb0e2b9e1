"""The WebSocket gateway: ESME's ``/connect`` protocol on sockets, and nothing else.

A gateway authenticates a socket (the first frame carries the token), reads history from
the database, forwards chat actions to the ``messenger.commands.<n>`` shard streams, and
delivers the frames consumers publish on the channels of the users connected to it. It
keeps no chat state: any gateway can serve any user, and a client that reconnects
elsewhere loses nothing.

Per connection: frames go out through a bounded queue and one writer task, so a client that
does not read (ESME's load-test organizer) slows nobody else; a frame that finds the queue
full is dropped and the connection resynchronised from the database when it drains. What
queued up while the writer waited goes out in one write (``aidpost.core.sockets.Frames``).
Every ``user_message`` carries its chat's sequence number; a gap (pub/sub lost something)
is filled from the database before the next frame goes out.

Extensions for aidpost's own clients, after ``{"type":"hello","payload":{"protocol":
"aidpost.1"}}``: ``resume`` (the last sequence number seen per chat; the gateway sends what
was missed) and ``queue`` frames (the agency's waiting count). ESME's clients crash on frame
types they do not know, so they never get these.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import text
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketDisconnected

from aidpost.core.bus import Bus, Coalesced
from aidpost.core.bus import Event as BusEvent
from aidpost.core.errors import Unauthorized, service_away
from aidpost.core.hub import Hub
from aidpost.core.settings import MessengerSettings
from aidpost.core.shards import shard_of, shard_stream
from aidpost.core.sockets import Frames, Inbox
from aidpost.core.tokens import REALMS, Realm, TokenVerifier
from aidpost.messenger import views
from aidpost.messenger.service import (
    COMMANDS_GROUP,
    COMMANDS_STREAM,
    MessengerService,
    agency_channel,
    gateway_channel,
    open_envelope,
    user_channel,
)

log = logging.getLogger("aidpost.gateway")
T = TypeVar("T")
PROTOCOL = "aidpost.1"
RESYNC = "\x00resync"  # a queue item, not a frame: reload every chat this socket follows
BACKFILL = "\x00backfill"  # a queue item: send one chat's messages after ``seen``
HISTORY = "\x00history"  # a queue item: send ``chat_history`` from the database
BUSY = "too busy to take this now; try again in a moment"
UNAVAILABLE = "temporarily unavailable; try again in a moment"
RETRY_MS = 1000  # what a client is told to wait after ``unavailable``
# Actions that go to the consumers; a client that is refused one knows it and may send it
# again (the rest are reads whose outcome the socket's state depends on).
COMMANDS = ("send_message", "close_chat", "start_chat")
# A socket's client is gone: its close was read, or Starlette marked the socket
# disconnected after a write failed (it then refuses the next read or write).
GONE = (WebSocketDisconnect, WebSocketDisconnected)


@dataclass(slots=True)
class Connection:
    id: str
    ws: WebSocket
    realm: Realm
    user_id: int
    agency_id: int | None
    queue: Inbox[tuple[dict[str, Any], str]]  # bounded; no deque while empty
    # The task that reads this socket (the server's own, for the socket's life), and the
    # one that writes to it: started by the first frame to send, retired by the sweeper
    # once the socket has had nothing to send for a while (idle sockets need none).
    task: asyncio.Task[Any] | None = None
    writer: asyncio.Task[None] | None = None
    wrote: bool = False  # since the sweeper last looked
    open: bool = False  # registered and not yet ending: frames offered get written
    reading: bool = False
    # Set when the gateway ends the socket itself (idle, or its writer failed): the code
    # it closes with, and the reason the reading task was cancelled.
    ended: int | None = None
    active: float = field(default_factory=time.monotonic)  # when its last frame came
    ext: bool = False
    seen: dict[str, int] = field(default_factory=dict)
    # The open chats this socket was told of (``chats``, ``new_chat``), once it asked for
    # its chats: a resync tells it of chats started or closed while updates were lost.
    known: set[str] | None = None
    tokens: float = 0.0
    refilled: float = field(default_factory=time.monotonic)
    dropped: bool = False

    @property
    def channel(self) -> str:
        return user_channel(self.realm, self.user_id)


class Gateway:
    def __init__(
        self,
        gateway_id: str,
        service: MessengerService,
        bus: Bus,
        hub: Hub,
        verifier: Callable[[], TokenVerifier],
        settings: MessengerSettings,
    ) -> None:
        self.id, self.service, self.bus, self.hub = gateway_id, service, bus, hub
        self.commands = Coalesced(bus)  # every socket's commands, one round trip per batch
        self.verifier, self.settings = verifier, settings
        self.connections: dict[str, Connection] = {}
        self.by_channel: dict[str, set[str]] = defaultdict(set)
        self.closing = False
        self._sweeper: asyncio.Task[None] | None = None
        # Per shard: its commands not handled yet, as last read from the bus, plus what this
        # gateway sent it since (see ``_watch_backlog``).
        self.backlog = [0] * settings.command_shards
        self._watcher: asyncio.Task[None] | None = None
        self._away_count, self._away_logged = 0, -math.inf  # see ``_away``
        self._probe: asyncio.Task[None] | None = None  # see ``_until_back``
        # Channels whose hub subscription is on its way: later followers wait for it.
        self._subscribing: dict[str, asyncio.Future[None]] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        await self.hub.subscribe(gateway_channel(self.id), self._on_reply)
        self.hub.on_reconnect(self._resync_all)
        self._sweeper = asyncio.create_task(self._sweep_idle(), name="ws-idle-sweeper")
        self._watcher = asyncio.create_task(self._watch_backlog(), name="ws-backlog-watcher")

    async def stop(self) -> None:
        """Tell every client to reconnect (to another gateway) and let them go."""
        self.closing = True
        for task in (self._sweeper, self._watcher, self._probe):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for conn in list(self.connections.values()):
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1012, reason="gateway restarting")
        await self.hub.unsubscribe(gateway_channel(self.id), self._on_reply)

    def _resync_all(self) -> None:
        for conn in self.connections.values():
            self._offer(conn, ({}, RESYNC))

    # -- delivery ----------------------------------------------------------------------------

    def _offer(self, conn: Connection, item: tuple[dict[str, Any], str]) -> None:
        try:
            conn.queue.put_nowait(item)
        except asyncio.QueueFull:
            if not conn.dropped:
                conn.dropped = True
                log.warning("outbound queue full; dropping", extra={"conn": conn.id})
        if conn.writer is None and conn.open:
            conn.writer = asyncio.create_task(self._writer(conn), name=f"ws-writer-{conn.id}")
            conn.writer.add_done_callback(lambda task: self._writer_done(conn, task))

    def _on_reply(self, _channel: str, data: bytes) -> None:
        header, text = open_envelope(data)
        conn = self.connections.get(str(header.get("conn")))
        if conn is not None:
            self._offer(conn, (header, text))

    def _on_update(self, channel: str, data: bytes) -> None:
        header, text = open_envelope(data)
        for conn_id in self.by_channel.get(channel, ()):
            conn = self.connections.get(conn_id)
            if conn is not None and (conn.ext or not header.get("ext")):
                self._offer(conn, (header, text))

    async def _writer(self, conn: Connection) -> None:
        ws = conn.ws
        # Frames that queued up while this task waited go out in one write, once the queue
        # is empty (or before anything sent from the database, which must come after them).
        frames = Frames(ws)
        while True:
            if frames.pending and (conn.queue.empty() or frames.full):
                await frames.flush()
            item = await conn.queue.get()
            if item is None:  # woken by the sweeper with nothing to send: retire
                conn.writer = None  # in this same step: the next frame starts a new one
                return
            header, text = item
            conn.wrote = True
            if text == RESYNC or (conn.dropped and conn.queue.empty()):
                await frames.flush()
                conn.dropped = False
                await self._patiently(self._resync, conn)
                if text == RESYNC:
                    continue
            if text == BACKFILL:
                await frames.flush()
                chat = header["chat"]
                await self._patiently(self._backfill, conn, chat, None)
                continue
            if text == HISTORY:
                await frames.flush()
                # Read and sent in the writer's order: no live message can overtake it.
                chat = header["chat"]
                messages = await self._patiently(self.service.history, chat)
                last = max([m["seq"] for m in messages], default=0)
                conn.seen[chat] = max(conn.seen.get(chat, 0), last)
                await ws.send_text(
                    views.frame("chat_history", {"chatId": chat, "messages": messages})
                )
                continue
            chat, seq = header.get("chat"), header.get("seq")
            if chat is not None and header.get("new"):
                if conn.known is not None:
                    if chat in conn.known:
                        continue  # announced already (a resync got there first)
                    conn.known.add(chat)
                conn.seen.setdefault(chat, 0)  # a new chat: follow it from its first message
            elif chat is not None and header.get("closed"):
                if conn.known is not None:
                    if chat not in conn.known and chat not in conn.seen:
                        continue  # told already (a resync got there first)
                    conn.known.discard(chat)
                conn.seen.pop(chat, None)
            if chat is not None and seq is not None:
                if chat in conn.seen:
                    last = conn.seen[chat]
                    if seq <= last:
                        continue  # already delivered (a backfill got there first)
                    if seq > last + 1:
                        await frames.flush()
                        await self._patiently(self._backfill, conn, chat, seq - 1)
                        if seq <= conn.seen.get(chat, 0):
                            continue  # a ``resume`` during the wait sent it already
                    conn.seen[chat] = seq
                elif conn.ext:
                    # aidpost clients load or resume a chat before they follow it; what they
                    # have not asked for yet comes with that answer, in order.
                    continue
                else:
                    conn.seen[chat] = seq  # ESME's clients: follow from what they got
            frames.add(text)

    async def _backfill(self, conn: Connection, chat: str, until: int | None) -> None:
        """The chat's messages after the last one sent (``seen``), up to ``until``."""
        for message in await self.service.history(chat, conn.seen.get(chat, 0), until):
            await conn.ws.send_text(views.frame("user_message", message))
            conn.seen[chat] = message["seq"]

    async def _patiently(self, read: Callable[..., Awaitable[T]], *args: Any) -> T:
        """A writer's read from the database, tried again while the database is away
        (lost, restarting, out of connections): the socket waits in order rather than
        being closed, and a reconnecting crowd does not make it worse. Each try starts
        from what was sent so far (``seen``); a bug or a client gone still raises."""
        while True:
            try:
                return await read(*args)
            except Exception as exc:
                if not service_away(exc):
                    raise
                self._away(exc)
            if self._probe is None:
                self._probe = asyncio.create_task(self._until_back(), name="ws-db-probe")
            await asyncio.shield(self._probe)

    async def _until_back(self) -> None:
        """One task per gateway waits for the database to answer again (0.1 s doubling to
        5 s, with jitter) while every waiting writer waits on it: thousands of sockets do
        not each knock on a server that is down."""
        try:
            delay = 0.1
            while True:
                await asyncio.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, 5.0)
                try:
                    async with self.service.db.session() as session:
                        await session.execute(text("SELECT 1"))
                    return
                except Exception as exc:
                    if not service_away(exc):
                        return  # not an outage: let the writers' own reads say what it is
                    self._away(exc)
        finally:
            self._probe = None

    def _away(self, exc: BaseException) -> None:
        """Logged at most every 10 s, with how many times it happened meanwhile: when the
        database goes, every socket finds out."""
        self._away_count += 1
        now = time.monotonic()
        if now - self._away_logged >= 10:
            log.warning(
                "database or bus unavailable; waiting", exc_info=exc,
                extra={"times": self._away_count},
            )  # fmt: skip
            self._away_logged, self._away_count = now, 0

    async def _resync(self, conn: Connection) -> None:
        """After updates may have been lost: chats started and closed meanwhile, then the
        messages after the last one sent, all from the database."""
        if conn.known is not None:
            active = await self.service.active_chats(conn.realm, conn.user_id)
            ids = {chat["id"] for chat in active}
            for chat_id in sorted(conn.known - ids):
                # Ended meanwhile: its last messages, then the end, as they would have come.
                if chat_id in conn.seen:
                    await self._backfill(conn, chat_id, None)
                    conn.seen.pop(chat_id, None)
                conn.known.discard(chat_id)
                await conn.ws.send_text(views.frame("closed_chat", {"chatId": chat_id}))
            for chat in reversed(active):  # oldest first, as they would have come
                if chat["id"] not in conn.known:
                    conn.known.add(chat["id"])
                    conn.seen[chat["id"]] = 0
                    await conn.ws.send_text(views.frame("new_chat", chat))
        # What every followed chat missed, in one query per few hundred chats, and sent in
        # writes of many frames each.
        asked = dict(conn.seen)
        missed = await self.service.history_after(asked)
        frames = Frames(conn.ws)
        for chat_id, messages in missed.items():
            for message in messages:
                if conn.seen.get(chat_id) != asked[chat_id]:
                    break  # moved by a ``resume`` meanwhile: the backfill it asked for follows
                frames.add(views.frame("user_message", message))
                conn.seen[chat_id] = asked[chat_id] = message["seq"]
                if frames.full:
                    await frames.flush()
        await frames.flush()

    # -- the socket --------------------------------------------------------------------------

    async def serve(self, ws: WebSocket) -> None:
        """One socket, for its life. Idle sockets are most of a gateway's memory, so an
        idle one costs the server's task and its one chain of frames, no task of ours and
        no timer: this task reads, a writer runs while there is something to send, and
        one sweeper per gateway retires idle writers and ends sockets gone quiet."""
        await ws.accept()
        # Nothing reads the handshake's headers again (the token comes in the first frame);
        # a browser's, cookies included, would idle here for the socket's life.
        ws.scope["headers"] = []
        if self.closing:
            await ws.close(code=1012)
            return
        conn = await self._authenticate(ws)
        if conn is None:
            return
        conn.task = asyncio.current_task()
        conn.open = True
        self.connections[conn.id] = conn
        try:
            # Subscribed before the first frame is read: whatever ``get_chats`` reads from
            # the database, an update committed after it reaches this socket.
            try:
                await self._follow(conn, conn.channel)
            except Exception as exc:
                if not service_away(exc):
                    raise
                self._away(exc)
                conn.ended = 1013  # try again later
                return
            conn.reading = True
            with contextlib.suppress(*GONE):
                await self._read(conn)
        except asyncio.CancelledError:
            # Ours (idle, or the writer failed) is absorbed; the server's goes on.
            task = asyncio.current_task()
            if conn.ended is None or (task is not None and task.uncancel() > 0):
                raise
        finally:
            conn.reading = conn.open = False
            if conn.writer is not None:
                conn.writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await conn.writer
            with contextlib.suppress(Exception):
                await conn.ws.close(code=conn.ended or 1011)
            await self._unfollow_all(conn)
            self.connections.pop(conn.id, None)

    def _writer_done(self, conn: Connection, writer: asyncio.Task[None]) -> None:
        error = None if writer.cancelled() else writer.exception()
        if error is None:
            return  # cancelled with its socket, or retired
        if not isinstance(error, (*GONE, OSError)):  # not just the client gone
            log.warning("connection writer failed", exc_info=error)
        self._end(conn, 1011)  # the socket ends with it

    def _end(self, conn: Connection, code: int) -> None:
        """Stop reading ``conn`` (its task closes it with ``code``)."""
        if conn.reading and conn.ended is None and conn.task is not None:
            conn.ended = code
            conn.task.cancel()

    async def _sweep_idle(self) -> None:
        """Every socket without a frame for the idle timeout gets ``error timeout`` and is
        closed (1001), checked a few times per timeout (at least every 5 s); a writer with
        nothing sent since the last look retires."""
        limit = self.settings.idle_timeout_seconds
        interval = min(max(limit / 5, 0.05), 5.0)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            quiet = time.monotonic() - limit
            for conn in list(self.connections.values()):
                if conn.active < quiet and conn.reading and conn.ended is None:
                    self._error(conn, "timeout")
                    conn.active = math.inf  # told once
                    loop.call_later(0.05, self._end, conn, 1001)  # the error goes out first
                elif conn.writer is not None and not conn.wrote and conn.queue.empty():
                    conn.queue.wake()
                conn.wrote = False

    async def _watch_backlog(self) -> None:
        """Back-pressure: read every shard's backlog (commands no consumer has handled yet)
        once per ``backlog_check_seconds``, in one round trip. Between reads, what this
        gateway sends a shard is added, so a burst cannot overshoot the limit by more than
        the other gateways' share of one interval. A shard at the limit is refused new
        commands (``_command``) until the consumers bring it down again."""
        streams = [shard_stream(COMMANDS_STREAM, n) for n in range(len(self.backlog))]
        limit = self.settings.command_backlog_limit
        failing = unknown = False
        while True:
            try:
                found = await self.bus.backlogs(streams, COMMANDS_GROUP)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Open, not shut: refusing every command because the count cannot be read
                # would stop the chats; the bus's own errors still reach the senders.
                if not failing:
                    log.warning("could not read the command backlog; not limiting", exc_info=True)
                failing = True
                self.backlog = [0] * len(streams)
            else:
                failing, was_unknown = False, unknown
                unknown = None in found.values()
                if unknown and not was_unknown:
                    log.warning("the bus cannot tell a command backlog; not limiting it")
                for shard, stream in enumerate(streams):
                    before, now = self.backlog[shard], found.get(stream) or 0
                    if (before >= limit) != (now >= limit):
                        log.log(
                            logging.WARNING if now >= limit else logging.INFO,
                            "command shard busy" if now >= limit else "command shard ready",
                            extra={"shard": shard, "backlog": now, "limit": limit},
                        )
                    self.backlog[shard] = now
            await asyncio.sleep(self.settings.backlog_check_seconds)

    async def _authenticate(self, ws: WebSocket) -> Connection | None:
        """The first frame, within the time limit: ``{"Authorization": "Bearer realm:jwt"}``.
        On failure the socket is closed (1008) without a word, as ESME did."""
        try:
            try:
                async with asyncio.timeout(self.settings.auth_timeout_seconds):
                    raw = await ws.receive_text()
            except TimeoutError:
                raise Unauthorized() from None  # no token in time: refused, as ESME did
            try:
                frame = json.loads(raw) if len(raw) <= 8192 else None
            except RecursionError:
                frame = None
            header = (
                next((v for k, v in frame.items() if k.lower() == "authorization"), None)
                if isinstance(frame, dict)
                else None
            )
            if not isinstance(header, str):
                raise Unauthorized()
            prefix = header.partition(" ")[2].partition(":")[0]
            if prefix not in REALMS:
                raise Unauthorized()
            realm: Realm = "organizer" if prefix == "organizer" else "participant"
            principal = await self.verifier().verify(header, realm)
            agency_id = None
            if realm == "organizer":
                staff = await self.service.staff(principal.user_id)
                if staff is None:
                    raise Unauthorized()
                agency_id = staff[1]
        except (ValueError, Unauthorized, KeyError, *GONE):
            with contextlib.suppress(Exception):
                await ws.close(code=1008)
            return None
        except Exception as exc:
            # The token could not be checked (the database, or the keys, out of reach):
            # not refused, but "try again later" (1013); a bug closes it as an error.
            away = service_away(exc)
            if away:
                self._away(exc)
            else:
                log.error("socket authentication failed", exc_info=exc)
            with contextlib.suppress(Exception):
                await ws.close(code=1013 if away else 1011)
            return None
        return Connection(
            id=uuid.uuid4().hex[:16],
            ws=ws,
            realm=realm,
            user_id=principal.user_id,
            agency_id=agency_id,
            queue=Inbox(self.settings.outbound_queue),
            tokens=float(self.settings.actions_burst),
        )

    async def _follow(self, conn: Connection, channel: str) -> None:
        ids = self.by_channel[channel]
        first = not ids
        ids.add(conn.id)  # before the await: a second device arriving now must not subscribe
        if first:
            done = self._subscribing[channel] = asyncio.get_running_loop().create_future()
            done.add_done_callback(lambda f: f.cancelled() or f.exception())  # read once
            try:
                await self.hub.subscribe(channel, self._on_update)
            except BaseException as exc:
                if isinstance(exc, Exception):
                    done.set_exception(exc)
                else:
                    done.cancel()
                # Not followed: no one is left believing it is (updates would not come).
                await self._unfollow(conn, channel)
                raise
            else:
                done.set_result(None)
            finally:
                if self._subscribing.get(channel) is done:
                    del self._subscribing[channel]
        elif (pending := self._subscribing.get(channel)) is not None:
            try:
                await asyncio.shield(pending)  # the first follower's subscription
            except BaseException:
                await self._unfollow(conn, channel)
                raise

    async def _unfollow_all(self, conn: Connection) -> None:
        for channel in [c for c, ids in self.by_channel.items() if conn.id in ids]:
            await self._unfollow(conn, channel)

    async def _unfollow(self, conn: Connection, channel: str) -> None:
        ids = self.by_channel.get(channel)
        if ids is None:
            return
        ids.discard(conn.id)
        if not ids:
            del self.by_channel[channel]
            try:
                await self.hub.unsubscribe(channel, self._on_update)
            except Exception as exc:
                # The hub has forgotten the listener already; Redis may keep sending to
                # this gateway until its connection is next made, which is harmless.
                if not service_away(exc):
                    log.warning("could not unsubscribe", exc_info=True)

    def _send(self, conn: Connection, kind: str, payload: Any) -> None:
        self._offer(conn, ({}, views.frame(kind, payload)))

    def _error(self, conn: Connection, message: str) -> None:
        self._send(conn, "error", {"message": message})

    def _allowed(self, conn: Connection, cost: int = 1) -> bool:
        now = time.monotonic()
        rate, burst = self.settings.actions_per_second, float(self.settings.actions_burst)
        conn.tokens = min(burst, conn.tokens + (now - conn.refilled) * rate)
        conn.refilled = now
        if conn.tokens < cost:
            return False
        conn.tokens -= cost
        return True

    async def _read(self, conn: Connection) -> None:
        while True:
            try:
                raw = await conn.ws.receive_text()
            except KeyError:  # a binary frame
                conn.active = time.monotonic()
                self._error(conn, "malformed message")
                continue
            conn.active = time.monotonic()
            if not self._allowed(conn):
                self._error(conn, "too many actions; slow down")
                continue
            if len(raw) > self.settings.max_frame_bytes:
                self._error(conn, f"frame over {self.settings.max_frame_bytes} bytes")
                continue
            try:
                frame = json.loads(raw)
            except (ValueError, RecursionError):
                frame = None
            if not isinstance(frame, dict) or not isinstance(frame.get("type", ""), str):
                self._error(conn, "malformed message")
                continue
            kind, payload = frame.get("type", ""), frame.get("payload")
            try:
                await self._dispatch(conn, kind, payload)
            except GONE:
                raise
            except Exception as exc:
                self._failed(conn, kind, payload, exc)

    def _failed(self, conn: Connection, kind: str, payload: Any, exc: Exception) -> None:
        """An action that could not be done, answered. The database or bus away is
        ``unavailable`` (aidpost's clients are told when to try again and, for a message,
        which one; chat.js sends it again); anything else is a bug, logged, and the client
        gets ESME's ``internal server error``. A refused command leaves the socket as it
        was; after a read the socket's state depends on (its chats, a history, a resume,
        the agency's queue), the socket ends (1013, or 1011 for a bug) and the client
        reconnects and reads again."""
        away = service_away(exc)
        if away:
            self._away(exc)
            self._refuse(conn, UNAVAILABLE, "unavailable", RETRY_MS, payload)
        else:
            log.error("action failed", exc_info=exc, extra={"conn": conn.id})
            self._error(conn, "internal server error")
        if kind not in COMMANDS:
            code = 1013 if away else 1011
            asyncio.get_running_loop().call_later(0.05, self._end, conn, code)

    def _refuse(
        self, conn: Connection, message: str, code: str, retry_ms: int, payload: Any
    ) -> None:
        """``error``: ESME's clients get the message they know; aidpost's also a code,
        when to try again, and which message (its client id) was not taken."""
        error: dict[str, Any] = {"message": message}
        if conn.ext:
            error |= {"code": code, "retryMs": retry_ms}
            if isinstance(payload, dict) and isinstance(payload.get("clientId"), str):
                error["clientId"] = payload["clientId"][:64]
        self._send(conn, "error", error)

    async def _dispatch(self, conn: Connection, kind: str, payload: Any) -> None:
        if kind == "get_chats":
            chats = await self.service.active_chats(conn.realm, conn.user_id)
            conn.known = (conn.known or set()) | {chat["id"] for chat in chats}
            self._send(conn, "chats", {"chats": chats})
        elif kind == "get_chat_history":
            chat_id = payload.get("chatId") if isinstance(payload, dict) else None
            if not isinstance(chat_id, str):
                self._error(conn, "invalid message payload")
                return
            chat = await self.service.open_chat_of(conn.realm, conn.user_id, chat_id)
            if chat is None:
                self._error(conn, f"you have no access to chat {chat_id[:64]}")
                return
            self._offer(conn, ({"chat": chat.id}, HISTORY))
        elif kind in COMMANDS:
            await self._command(conn, kind, payload)
        elif kind == "hello" and isinstance(payload, dict) and payload.get("protocol") == PROTOCOL:
            conn.ext = True
            self._send(conn, "hello", {"protocol": PROTOCOL, "gateway": self.id})
            if conn.agency_id is not None:
                await self._follow(conn, agency_channel(conn.agency_id))
                waiting = await self.service.waiting_count(conn.agency_id)
                self._send(conn, "queue", {"agencyId": conn.agency_id, "waiting": waiting})
        elif kind == "resume" and conn.ext:
            await self._resume(conn, payload)
        else:
            self._error(conn, "invalid message type")

    async def _command(self, conn: Connection, kind: str, payload: Any) -> None:
        if kind in ("start_chat", "close_chat") and conn.realm != "organizer":
            self._error(conn, "invalid message type")
            return
        if kind != "start_chat":
            if not isinstance(payload, dict) or not isinstance(payload.get("chatId"), str):
                self._error(conn, "invalid message payload")
                return
            if kind == "send_message" and not isinstance(payload.get("message"), str):
                self._error(conn, "invalid message payload")
                return
            payload = {
                k: payload[k]
                for k in ("chatId", "message", "lat", "lng", "clientId")
                if k in payload
            }
            client_id = payload.get("clientId")
            if client_id is not None and (not isinstance(client_id, str) or len(client_id) > 64):
                self._error(conn, "invalid message payload")
                return
            texts = [v for k, v in payload.items() if k in ("chatId", "message", "clientId")]
            if not all(_storable(v) for v in texts if isinstance(v, str)):
                self._error(conn, "invalid message payload")
                return
        else:
            payload = {}
        command = {
            "action": kind,
            "realm": conn.realm,
            "userId": conn.user_id,
            "agencyId": conn.agency_id,
            "gateway": self.id,
            "conn": conn.id,
            "payload": payload,
        }
        # One shard per chat (per agency for starts): one consumer handles a chat's commands,
        # in the order this reader sent them.
        key = str(payload.get("chatId", f"agency:{conn.agency_id}"))
        shard = shard_of(key, self.settings.command_shards)
        if self.backlog[shard] >= self.settings.command_backlog_limit:
            # Overload: refused now rather than queued past what the bus keeps. The client
            # knows it was not taken; aidpost's own clients are told which message and when
            # to send it again (ESME's get the plain error they know).
            # Not sooner than the next backlog check could have let it in.
            retry = max(1000, round(self.settings.backlog_check_seconds * 1000))
            self._refuse(conn, BUSY, "busy", retry, payload)
            return
        # Counted before the await: the sockets whose commands share one XADD pipeline
        # each see the others'.
        self.backlog[shard] += 1
        try:
            await self.commands.publish(
                shard_stream(COMMANDS_STREAM, shard), BusEvent("messenger.command.v1", command)
            )
        except BaseException:
            self.backlog[shard] = max(0, self.backlog[shard] - 1)
            raise

    async def _resume(self, conn: Connection, payload: Any) -> None:
        """``{"chats": {chatId: lastSeq}}``: send what this device missed, in order."""
        seen = payload.get("chats") if isinstance(payload, dict) else None
        if not isinstance(seen, dict):
            self._error(conn, "invalid message payload")
            return
        if len(seen) > 100 or not self._allowed(conn, cost=len(seen)):
            self._error(conn, "too many chats to resume at once")
            return
        for chat_id, last in seen.items():
            if not isinstance(chat_id, str) or isinstance(last, bool) or not isinstance(last, int):
                continue
            chat = await self.service.chat_of(conn.realm, conn.user_id, chat_id)
            if chat is None:
                continue
            if chat.ended:
                # Closed while this device was away: say so (ESME's frame).
                self._send(conn, "closed_chat", {"chatId": chat.id})
                continue
            # The writer sends what follows ``last`` from the database, in order; live
            # messages queued meanwhile are checked against the same counter, so nothing
            # is sent twice and nothing is skipped.
            conn.seen[chat.id] = min(max(last, 0), chat.lastSeq)
            self._offer(conn, ({"chat": chat.id}, BACKFILL))
        self._send(conn, "resumed", {})


def _storable(text: str) -> bool:
    """Text every database can store: no NUL, no lone surrogates."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
