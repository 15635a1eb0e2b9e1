"""The messenger's consumers: the agencies' queues, and the chat commands gateways send.

Commands arrive on the ``messenger.commands.<n>`` shard streams (by chat) and are handled
in batches by any number of consumer processes, each shard by one of them at a time (see
``core/shards.py``), so a chat's commands keep their order: one transaction per batch claims queue
entries, numbers and stores messages (one insert for many), closes chats and records each
command id in the inbox, so a redelivered batch changes nothing; after the commit, one hub
pipeline publishes the frames to the users' channels. Start and close also write
``chat.started.v1`` / ``chat.closed.v1`` to the outbox in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, and_, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from aidpost.core import faults
from aidpost.core import outbox as outbox_mod
from aidpost.core.bus import Event as BusEvent
from aidpost.core.clock import Clock
from aidpost.core.db import Database, is_sqlite
from aidpost.core.directory import Directory
from aidpost.core.hub import Hub
from aidpost.core.outbox import first_time
from aidpost.core.validation import parse_datetime
from aidpost.messenger import views
from aidpost.messenger.models import (
    Agency,
    Chat,
    Message,
    NewMessage,
    QueueEntry,
    Staff,
    inbox,
    outbox,
)

log = logging.getLogger("aidpost.messenger")

COMMANDS_STREAM = "messenger.commands"
COMMANDS_GROUP = "messenger-consumers"
CHATS_STREAM = "messenger.chats"
HELP_STREAM = "help.requests"
ORGANIZER_STREAM = "organizer.changes"
STAFF_ROLES = (2, 3, 4)  # owner, manager, support (ESME: admins cannot chat)
QUEUE_PUSH_LIMIT = 1000  # places pushed live; a participant further back polls the API


# A MongoDB ObjectId's layout: 4 bytes of seconds, 5 random bytes per process, a 3-byte
# counter from a random start.
_PROCESS: str
_COUNTER: itertools.count[int]


def _new_process() -> None:
    global _PROCESS, _COUNTER
    _PROCESS = os.urandom(5).hex()
    _COUNTER = itertools.count(int.from_bytes(os.urandom(3), "big"))


_new_process()
os.register_at_fork(after_in_child=_new_process)  # a forked worker is a process of its own


def new_id() -> str:
    """24 hex characters laid out as the MongoDB ObjectIds ESME's clients know: the time
    first, so ids made one after another sort together. The primary key's B-tree then
    grows at its right-hand end instead of everywhere: a random id makes each insert touch
    a random leaf, and a messages table larger than PostgreSQL's buffers reads and writes
    pages for it. Unique per process (the counter) and across processes (the random
    part); not secret (access is checked by membership, as ESME did)."""
    seconds = int(time.time()) & 0xFFFFFFFF
    return f"{seconds:08x}{_PROCESS}{next(_COUNTER) & 0xFFFFFF:06x}"


def user_channel(realm: str, user_id: int) -> str:
    return f"u:{realm}:{user_id}"


def gateway_channel(gateway: str) -> str:
    return f"g:{gateway}"


def agency_channel(agency_id: int) -> str:
    return f"a:{agency_id}"


def envelope(header: dict[str, Any], text: str) -> bytes:
    """A hub message: a small JSON header line, then the frame text sent as it is."""
    return json.dumps(header, separators=(",", ":")).encode() + b"\n" + text.encode()


def open_envelope(data: bytes) -> tuple[dict[str, Any], str]:
    head, _, text = data.partition(b"\n")
    header: dict[str, Any] = json.loads(head)
    return header, text.decode()


@dataclass(slots=True)
class ChatRef:
    """What a batch of sends needs of a chat (the fast path reads no ORM object)."""

    id: str
    organizerId: int
    participantId: int
    ended: int
    lastSeq: int


# PostgreSQL's statements for batches of sends. Each chat and each send key is one probe
# of a unique index: a LATERAL subquery (with LIMIT 1, which PostgreSQL does not flatten
# into a join) planned for the tables as they are at each run (``aidpost.core.db``'s
# CUSTOM_PLANS). A generic plan made while the tables were small joined the batch's keys to
# a sequential scan of every message, and of these probes, reads every message of the chat
# down the index of sequence numbers.
_SEND_KEYS = (
    "unnest(CAST(:chats AS VARCHAR[]), CAST(:froms AS INTEGER[]),"
    " CAST(:authors AS INTEGER[]), CAST(:clients AS VARCHAR[])) AS k(chat, frm, author, client)"
    " CROSS JOIN LATERAL (SELECT * FROM messages WHERE chat_id = k.chat"
    " AND from_organizer = k.frm AND author_id = k.author AND client_id = k.client LIMIT 1) m"
)
# The messages stored under the send keys ``chats``/``froms``/``authors``/``clients``.
STORED_SENDS = text(f"SELECT m.* FROM {_SEND_KEYS}")
# A batch of sends only (the common case under load): one statement locks and reads the
# chats, in the order of ``ids`` (sorted by the caller: chat ids are hex of one length, so
# that is the ORM path's ORDER BY id too), with the messages already stored under the
# batch's send keys (resends; JSON, usually none); one numbers and stores.
LOCK_CHATS = text(
    "WITH locked AS (SELECT c.* FROM unnest(CAST(:ids AS VARCHAR[])) AS i(id)"
    " CROSS JOIN LATERAL (SELECT id, organizer_id, participant_id, ended, last_seq FROM chats"
    " WHERE chats.id = i.id FOR UPDATE) c),"
    " stored AS (SELECT m.chat_id, json_agg(json_build_array(m.id, m.seq, m.author_id,"
    " m.from_organizer, m.content, m.time_sent, m.lat, m.lng, m.client_id)) AS found"
    f" FROM {_SEND_KEYS} GROUP BY m.chat_id)"
    " SELECT l.id, l.organizer_id, l.participant_id, l.ended, l.last_seq, s.found"
    " FROM locked l LEFT JOIN stored s ON s.chat_id = l.id ORDER BY l.id"
)
# The messages table's columns and the NewMessage attribute each is written from, in the
# model's order; STORE_SENDS's parameters are named after the columns.
_COLUMNS = [(c.name, attr) for attr, c in Message.__mapper__.columns.items()]


def _array_of(column: Any) -> str:
    """``CAST(:name AS type[])`` for an unnest; strings unbounded (a cast would cut them)."""
    pg = PGDialect()  # type: ignore[no-untyped-call]  # SQLAlchemy leaves it untyped
    kind = str(column.type.compile(dialect=pg)).split("(")[0]
    return f"CAST(:{column.name} AS {kind}[])"


# The chats by their primary key (``id = ANY``), not by a join of every chat with the ids.
STORE_SENDS = text(
    "WITH numbered AS (UPDATE chats"
    " SET last_seq = (CAST(:last AS INTEGER[]))[array_position(CAST(:ids AS VARCHAR[]), id)]"
    " WHERE id = ANY(CAST(:ids AS VARCHAR[])))"
    f" INSERT INTO messages ({', '.join(name for name, _ in _COLUMNS)})"
    f" SELECT * FROM unnest({', '.join(map(_array_of, Message.__mapper__.columns))})"
)


@dataclass
class Outgoing:
    """What a batch publishes after its commit."""

    items: list[tuple[str, bytes]] = field(default_factory=list)
    new_chats: list[Chat] = field(default_factory=list)
    outboxed: bool = False  # events went into the outbox: the relay has work

    def to_users(
        self, chat: Chat | ChatRef, text: str, seq: int | None = None, *, closed: bool = False
    ) -> None:
        header: dict[str, Any] = {"chat": chat.id}
        if seq is not None:
            header["seq"] = seq
        if closed:
            header["closed"] = True
        data = envelope(header, text)
        self.items.append((user_channel("organizer", chat.organizerId), data))
        self.items.append((user_channel("participant", chat.participantId), data))

    def reply(self, command: dict[str, Any], text: str) -> None:
        self.items.append(
            (gateway_channel(command["gateway"]), envelope({"conn": command["conn"]}, text))
        )

    def error(self, command: dict[str, Any], message: str) -> None:
        self.reply(command, views.frame("error", {"message": message}))


class MessengerService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        hub: Hub,
        directory: Directory,
        *,
        max_message_chars: int,
        on_commit: Any = lambda: None,
    ) -> None:
        self.db, self.clock, self.hub, self.directory = db, clock, hub, directory
        self.max_message_chars = max_message_chars
        self.on_commit = on_commit
        # SQLite takes the ORM path for every batch and its own resend check.
        self._sqlite = is_sqlite(db.url)

    # -- read models and queues ------------------------------------------------------------

    async def on_organizer_change(self, event: BusEvent) -> None:
        async with self.db.transaction() as session:
            if not await first_time(session, inbox, event.id):
                return
            data = event.data
            if event.type == "organizer.user.changed.v1":
                user = data.get("user")
                if user is None:
                    staff = await session.get(Staff, int(data["id"]))
                    if staff is not None:
                        await session.delete(staff)
                else:
                    await session.merge(
                        Staff(id=int(user["id"]), agencyId=user["agencyId"], role=int(user["role"]))
                    )
            elif event.type == "organizer.agency.changed.v1":
                agency = data.get("agency")
                if agency is None:
                    found = await session.get(Agency, int(data["id"]))
                    if found is not None:
                        await session.delete(found)
                else:
                    await session.merge(
                        Agency(id=int(data["id"]), approved=bool(agency["approved"]))
                    )

    async def on_help_event(self, event: BusEvent) -> None:
        await self.on_help_events([event])

    async def on_help_events(self, events: Sequence[BusEvent]) -> None:
        """``help.requested.v1`` joins the agency's queue; ``help.cancelled.v1`` leaves it.

        One transaction for a whole read of events (a queue that grows by many requests a
        second must not wait for the database once per request), then one publish of the
        new queue counts per agency touched. A batch the database refuses is retried one
        event at a time, so one bad event cannot hold the others back."""
        try:
            await self._help_batch(events)
        except (OperationalError, InterfaceError):
            raise  # the database is away: the read stays pending and is retried
        except Exception:
            if len(events) == 1:
                log.exception("help event refused", extra={"event": events[0].id})
                return
            for event in events:
                await self.on_help_events([event])

    async def _help_batch(self, events: Sequence[BusEvent]) -> None:
        touched: set[int] = set()
        async with self.db.transaction() as session:
            for event in events:
                if event.type not in ("help.requested.v1", "help.cancelled.v1"):
                    continue
                if not await first_time(session, inbox, event.id):
                    continue
                data = event.data
                agency_id = int(data["agencyId"])
                touched.add(agency_id)
                if event.type == "help.requested.v1":
                    if await session.get(QueueEntry, int(data["requestId"])) is None:
                        session.add(
                            QueueEntry(
                                requestId=int(data["requestId"]),
                                agencyId=agency_id,
                                eventId=int(data["eventId"]),
                                participantId=int(data["participantId"]),
                                problemType=str(data.get("problemType") or "other"),
                                description=str(data.get("description") or ""),
                                lat=data.get("lat"),
                                lng=data.get("lng"),
                                requestedAt=parse_datetime(data["requestedAt"]),
                                status="waiting",
                            )
                        )
                        await session.flush()
                else:
                    await session.execute(
                        update(QueueEntry)
                        .where(
                            QueueEntry.requestId == int(data["requestId"]),
                            QueueEntry.status == "waiting",
                        )
                        .values(status="cancelled")
                    )
            queues = {a: await self._queue(session, a) for a in sorted(touched)}
        frames: list[tuple[str, bytes]] = []
        for agency_id, queue in queues.items():
            frames.extend(self._queue_frames(agency_id, queue))
        await self.hub.publish(frames)

    async def _queue(self, session: AsyncSession, agency_id: int) -> list[tuple[int, int]]:
        """The agency's waiting requests in the order they will be taken:
        (participant id, request id)."""
        rows = await session.execute(
            select(QueueEntry.participantId, QueueEntry.requestId)
            .where(QueueEntry.agencyId == agency_id, QueueEntry.status == "waiting")
            .order_by(QueueEntry.requestedAt, QueueEntry.requestId)
            .limit(QUEUE_PUSH_LIMIT)
        )
        return [(int(p), int(r)) for p, r in rows.all()]

    def _queue_frames(
        self, agency_id: int, queue: list[tuple[int, int]]
    ) -> list[tuple[str, bytes]]:
        """aidpost's own frames (gateways pass them only to clients that said ``hello``):
        the waiting count for the agency's staff, each participant's place for them."""
        waiting = len(queue)
        items = [
            (
                agency_channel(agency_id),
                envelope(
                    {"ext": True}, views.frame("queue", {"agencyId": agency_id, "waiting": waiting})
                ),
            )
        ]
        for position, (participant_id, request_id) in enumerate(queue, start=1):
            text = views.frame(
                "queue_position",
                {"requestId": request_id, "position": position, "waiting": waiting},
            )
            items.append(
                (user_channel("participant", participant_id), envelope({"ext": True}, text))
            )
        return items

    async def waiting_count(self, agency_id: int) -> int:
        async with self.db.session() as session:
            return len(await self._queue(session, agency_id))

    # -- commands ----------------------------------------------------------------------------

    async def handle_commands(self, events: Sequence[BusEvent]) -> None:
        """One batch of gateway commands: one transaction, one insert, one publish.

        If the batch fails on its data (a value the database refuses), each command is
        retried alone, so one bad command cannot hold back the others; the one that still
        fails is answered with an error and dropped. Connection trouble raises: the batch
        stays pending and is retried.
        """
        try:
            await self._handle_batch(events)
        except (OperationalError, InterfaceError, IntegrityError):
            raise  # the database was unreachable or a race lost: retry the batch later
        except Exception:
            if len(events) == 1:
                log.exception("command refused", extra={"command": events[0].id})
                data = events[0].data
                if {"gateway", "conn"} <= set(data):
                    await self.hub.publish(
                        [
                            (
                                gateway_channel(str(data["gateway"])),
                                envelope(
                                    {"conn": data["conn"]},
                                    views.frame("error", {"message": "internal server error"}),
                                ),
                            )
                        ]
                    )
                return
            for event in events:
                await self.handle_commands([event])

    async def _handle_batch(self, events: Sequence[BusEvent]) -> None:
        if not events:
            return
        if not self._sqlite and all(e.data.get("action") == "send_message" for e in events):
            await self._handle_sends(events)
            return
        out = Outgoing()
        agencies_touched: set[int] = set()
        async with self.db.transaction() as session:
            fresh = []
            for event in events:
                action = event.data.get("action")
                # A redelivered send is found again by its client id and published again
                # (its first delivery may have died before publishing); start and close run
                # once, by command id, and a redelivery publishes their outcome again.
                if action == "send_message" or await first_time(session, inbox, event.id):
                    fresh.append(event)
                else:
                    await self._replay(session, {**event.data, "id": event.id}, out)
            chat_ids = {
                _chat_id(e.data)
                for e in fresh
                if e.data.get("action") in ("send_message", "close_chat")
                and isinstance(e.data.get("payload"), dict)
            }
            chats = await self._lock_chats(session, chat_ids)
            messages: list[NewMessage] = []
            stored = await self._stored_sends(session, fresh)
            for event in fresh:
                command = {**event.data, "id": event.id}
                action = command.get("action")
                if action == "send_message":
                    await self._send(command, chats, messages, stored, out)
                elif action == "start_chat":
                    agency = await self._start(session, command, messages, out)
                    if agency is not None:
                        agencies_touched.add(agency)
                elif action == "close_chat":
                    await self._close(session, command, chats, out)
            if messages:
                # One INSERT for the batch's messages (new chats are flushed first).
                await session.execute(insert(Message), [m.row() for m in messages])
            queues = {a: await self._queue(session, a) for a in agencies_touched}
        faults.point("messenger.after_commit")
        if out.new_chats:
            await self._announce(out)
        for agency_id, queue in queues.items():
            out.items.extend(self._queue_frames(agency_id, queue))
        await self.hub.publish(out.items)
        if out.outboxed:
            self.on_commit()  # a batch of sends only has no event to relay

    async def _handle_sends(self, events: Sequence[BusEvent]) -> None:
        """A batch of sends only, on PostgreSQL: what ``_handle_batch`` does for them, with
        the same rules (``_send``), in four round trips of plain SQL (begin; lock and read
        the chats and what was stored already; number and store; commit) instead of six
        through the ORM's objects and unit of work. A client id stored meanwhile by another
        consumer (an overlap at a shard's hand-over) is refused by the unique constraint,
        and the batch is retried."""
        out = Outgoing()
        commands = [{**e.data, "id": e.id} for e in events]
        keys = {k for c in commands if (k := _send_key(c)) is not None}
        async with self.db.transaction() as session:
            params = {"ids": sorted({_chat_id(c) for c in commands}), **_key_params(keys)}
            chats: dict[str, ChatRef] = {}
            stored: dict[SendKey, Message | NewMessage] = {}
            for row in await session.execute(LOCK_CHATS, params):
                chats[row[0]] = ChatRef(row[0], row[1], row[2], row[3], row[4])
                # asyncpg hands the JSON over decoded (SQLAlchemy's codec); text if not.
                found = json.loads(row[5]) if isinstance(row[5], str) else row[5]
                for m in found or ():
                    # JSON writes a whole float8 as an integer: as the ORM path reads it.
                    lat, lng = (None if v is None else float(v) for v in (m[6], m[7]))
                    known = NewMessage(
                        m[0], row[0], m[1], m[2], m[3], m[4], _timestamp(m[5]), lat, lng, m[8]
                    )
                    # joined on the batch's keys: each one found is one of them
                    stored[(row[0], known.fromOrganizer, known.authorId, known.clientId)] = known
            messages: list[NewMessage] = []
            for command in commands:
                await self._send(command, chats, messages, stored, out)
            if messages:
                touched = {m.chatId: chats[m.chatId].lastSeq for m in messages}
                columns = {name: [getattr(m, attr) for m in messages] for name, attr in _COLUMNS}
                await session.execute(
                    STORE_SENDS, {"ids": list(touched), "last": list(touched.values()), **columns}
                )
        faults.point("messenger.after_commit")
        await self.hub.publish(out.items)

    async def _replay(self, session: AsyncSession, command: dict[str, Any], out: Outgoing) -> None:
        if command.get("action") == "start_chat":
            chat = await session.scalar(select(Chat).where(Chat.startCommand == command["id"]))
            if chat is not None:
                first = await session.scalar(
                    select(Message).where(Message.chatId == chat.id, Message.seq == 1)
                )
                out.new_chats.append(chat)
                if first is not None:
                    out.to_users(chat, views.frame("user_message", views.message(first)), 1)
        elif command.get("action") == "close_chat":
            payload = command.get("payload") or {}
            chat = await _get_chat(session, str(payload.get("chatId")))
            if chat is not None and chat.ended:
                out.to_users(chat, views.frame("closed_chat", {"chatId": chat.id}), closed=True)

    async def _lock_chats(self, session: AsyncSession, ids: set[str]) -> dict[str, Chat]:
        if not ids:
            return {}
        rows = await session.scalars(
            select(Chat).where(Chat.id.in_(sorted(ids))).order_by(Chat.id).with_for_update()
        )
        return {c.id: c for c in rows.all()}

    @staticmethod
    def _member(command: dict[str, Any], chat: Chat | ChatRef | None) -> bool:
        if chat is None or chat.ended:
            return False
        member = chat.organizerId if command["realm"] == "organizer" else chat.participantId
        return bool(member == int(command["userId"]))

    async def _stored_sends(
        self, session: AsyncSession, events: Sequence[BusEvent]
    ) -> dict[SendKey, Message | NewMessage]:
        """Messages already stored for this batch's sends (a redelivery, a client's resend),
        found with one query instead of one per message."""
        keys = {k for e in events if (k := _send_key({**e.data, "id": e.id})) is not None}
        if not keys:
            return {}
        if self._sqlite:
            rows = await session.scalars(stored_sends_query(keys))
        else:
            rows = await session.scalars(
                select(Message).from_statement(STORED_SENDS), _key_params(keys)
            )
        return {(m.chatId, m.fromOrganizer, m.authorId, m.clientId): m for m in rows.all()}

    async def _send(
        self,
        command: dict[str, Any],
        chats: dict[str, Chat] | dict[str, ChatRef],
        messages: list[NewMessage],
        stored: dict[SendKey, Message | NewMessage],
        out: Outgoing,
    ) -> None:
        payload = command["payload"]
        chat = chats.get(str(payload.get("chatId")))
        if not self._member(command, chat):
            out.error(command, f"you have no access to chat {payload.get('chatId', '')}")
            return
        assert chat is not None
        content = payload.get("message")
        if not isinstance(content, str):
            out.error(command, "invalid message payload")
            return
        if len(content) > self.max_message_chars:
            out.error(command, f"message must be at most {self.max_message_chars} characters")
            return
        from_organizer = 1 if command["realm"] == "organizer" else 0
        key = _send_key(command)
        assert key is not None
        known = stored.get(key)
        if known is not None:
            # A resend: stored once; send it again so the sender knows it is there.
            out.to_users(chat, views.frame("user_message", views.message(known)), known.seq)
            return
        lat = lng = None
        if (
            not from_organizer
            and _is_coordinate(payload.get("lat"), 90)
            and _is_coordinate(payload.get("lng"), 180)
        ):
            lat, lng = float(payload["lat"]), float(payload["lng"])
        chat.lastSeq += 1
        message = NewMessage(
            id=new_id(),
            chatId=chat.id,
            seq=chat.lastSeq,
            authorId=command["userId"],
            fromOrganizer=from_organizer,
            content=content,
            timeSent=self.clock.now(),
            lat=lat,
            lng=lng,
            clientId=key[3],
        )
        messages.append(message)
        stored[key] = message  # a second send of it in this batch is a resend
        out.to_users(chat, views.frame("user_message", views.message(message)), message.seq)

    async def _start(
        self,
        session: AsyncSession,
        command: dict[str, Any],
        messages: list[NewMessage],
        out: Outgoing,
    ) -> int | None:
        """Take the agency's oldest waiting request (exactly one staff member gets it) and
        open its chat with the problem description as the participant's first message."""
        if command["realm"] != "organizer" or not command.get("agencyId"):
            out.error(command, "invalid message type")
            return None
        agency_id = int(command["agencyId"])
        # Roles and approval may have changed since the socket connected.
        staff = await session.get(Staff, int(command["userId"]))
        agency = await session.get(Agency, agency_id)
        if (
            staff is None
            or staff.role not in STAFF_ROLES
            or staff.agencyId != agency_id
            or agency is None
            or not agency.approved
        ):
            out.error(command, "you may no longer take requests")
            return None
        chat_id = new_id()
        oldest = (
            select(QueueEntry.requestId)
            .where(QueueEntry.agencyId == agency_id, QueueEntry.status == "waiting")
            .order_by(QueueEntry.requestedAt, QueueEntry.requestId)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        taken = (
            await session.execute(
                update(QueueEntry)
                .where(QueueEntry.requestId == oldest, QueueEntry.status == "waiting")
                .values(status="taken", chatId=chat_id)
                .returning(QueueEntry)
            )
        ).scalar_one_or_none()
        if taken is None:
            out.reply(command, views.frame("info", {"message": "no new chats"}))
            return None
        now = self.clock.now()
        chat = Chat(
            id=chat_id,
            agencyId=agency_id,
            eventId=taken.eventId,
            organizerId=int(command["userId"]),
            participantId=taken.participantId,
            requestId=taken.requestId,
            ended=0,
            latStart=taken.lat,
            lngStart=taken.lng,
            timeStart=now,
            timeEnd=None,
            lastSeq=1,
            startCommand=command["id"],
        )
        session.add(chat)
        description = taken.description or f"I need {taken.problemType} assistance"
        first = NewMessage(
            id=new_id(),
            chatId=chat_id,
            seq=1,
            authorId=taken.participantId,
            fromOrganizer=0,
            content=f"Problem description: {description}",
            timeSent=now,
            lat=taken.lat,
            lng=taken.lng,
            clientId=f"request-{taken.requestId}",
        )
        await session.flush()  # the chat row before its first message
        messages.append(first)
        out.outboxed = True
        await outbox_mod.publish(
            session,
            outbox,
            CHATS_STREAM,
            BusEvent(
                "chat.started.v1",
                {
                    "requestId": taken.requestId,
                    "chatId": chat_id,
                    "agencyId": agency_id,
                    "eventId": taken.eventId,
                    "participantId": taken.participantId,
                    "organizerId": chat.organizerId,
                },
            ),
        )
        out.new_chats.append(chat)
        out.to_users(chat, views.frame("user_message", views.message(first)), 1)
        return agency_id

    async def _announce(self, out: Outgoing) -> None:
        """``new_chat`` (with the participant's details) goes before its first message."""
        users = await self.directory.users([c.participantId for c in out.new_chats])
        frames = []
        for chat in out.new_chats:
            details = views.participant_details(users.get(chat.participantId))
            text = views.frame("new_chat", views.chat(chat, details))
            data = envelope({"chat": chat.id, "new": True}, text)
            frames.append((user_channel("organizer", chat.organizerId), data))
            frames.append((user_channel("participant", chat.participantId), data))
        out.items[:0] = frames

    async def _close(
        self, session: AsyncSession, command: dict[str, Any], chats: dict[str, Chat], out: Outgoing
    ) -> None:
        payload = command["payload"]
        chat = chats.get(str(payload.get("chatId")))
        if command["realm"] != "organizer":
            out.error(command, "invalid message type")
            return
        if not self._member(command, chat):
            out.error(command, f"you have no access to chat {payload.get('chatId', '')}")
            return
        assert chat is not None
        chat.ended, chat.timeEnd = 1, self.clock.now()
        out.outboxed = True
        await outbox_mod.publish(
            session,
            outbox,
            CHATS_STREAM,
            BusEvent(
                "chat.closed.v1",
                {
                    "requestId": chat.requestId,
                    "chatId": chat.id,
                    "participantId": chat.participantId,
                    "eventId": chat.eventId,
                },
            ),
        )
        out.to_users(chat, views.frame("closed_chat", {"chatId": chat.id}), closed=True)

    # -- reads (gateways and REST) ---------------------------------------------------------------

    async def staff(self, user_id: int) -> tuple[int, int] | None:
        """(role, agency id) of a staff member who may chat now, else None."""
        async with self.db.session() as session:
            staff = await session.get(Staff, user_id)
            if staff is None or staff.role not in STAFF_ROLES or staff.agencyId is None:
                return None
            agency = await session.get(Agency, staff.agencyId)
            if agency is None or not agency.approved:
                return None
            return staff.role, staff.agencyId

    async def active_chats(self, realm: str, user_id: int) -> list[dict[str, Any]]:
        """ESME's ``chats``: the caller's open chats, newest first; staff see participants."""
        column = Chat.organizerId if realm == "organizer" else Chat.participantId
        async with self.db.session() as session:
            rows = (
                await session.scalars(
                    select(Chat)
                    .where(column == user_id, Chat.ended == 0)
                    .order_by(Chat.timeStart.desc(), Chat.id.desc())
                )
            ).all()
        if realm != "organizer":
            return [views.chat(c) for c in rows]
        users = await self.directory.users([c.participantId for c in rows])
        return [views.chat(c, views.participant_details(users.get(c.participantId))) for c in rows]

    async def chat_of(self, realm: str, user_id: int, chat_id: str) -> Chat | None:
        """A chat of this user, open or ended."""
        async with self.db.session() as session:
            chat = await _get_chat(session, chat_id)
        if chat is None:
            return None
        member = chat.organizerId if realm == "organizer" else chat.participantId
        return chat if member == user_id else None

    async def open_chat_of(self, realm: str, user_id: int, chat_id: str) -> Chat | None:
        async with self.db.session() as session:
            chat = await _get_chat(session, chat_id)
        column = (
            chat.organizerId
            if chat and realm == "organizer"
            else (chat.participantId if chat else None)
        )
        if chat is None or chat.ended or column != user_id:
            return None
        return chat

    async def history(
        self, chat_id: str, after_seq: int = 0, until_seq: int | None = None
    ) -> list[dict[str, Any]]:
        async with self.db.session() as session:
            stmt = select(Message).where(Message.chatId == chat_id, Message.seq > after_seq)
            if until_seq is not None:
                stmt = stmt.where(Message.seq <= until_seq)
            rows = (await session.scalars(stmt.order_by(Message.seq))).all()
        return [views.message(m) for m in rows]

    async def history_after(self, after: dict[str, int]) -> dict[str, list[dict[str, Any]]]:
        """``history`` of many chats at once: each chat's messages after its own sequence
        number, oldest first, by chat; chats with nothing after are left out. One query per
        ``HISTORY_CHUNK`` chats, an OR of one index range per chat (a staff member's
        resynchronisation had been one query per chat: 15,000 of them for ESME's
        load-test organizer)."""
        found: dict[str, list[dict[str, Any]]] = {}
        items = sorted(after.items())
        async with self.db.session() as session:
            for start in range(0, len(items), HISTORY_CHUNK):
                ranges = [
                    and_(Message.chatId == chat, Message.seq > seq)
                    for chat, seq in items[start : start + HISTORY_CHUNK]
                ]
                stmt = select(Message).where(or_(*ranges)).order_by(Message.chatId, Message.seq)
                for m in (await session.scalars(stmt)).all():
                    found.setdefault(m.chatId, []).append(views.message(m))
        return found

    async def archived_chats(
        self, *, agency_id: int | None = None, participant_id: int | None = None
    ) -> list[dict[str, Any]]:
        """ESME's archives: ended chats, newest first, with the participant's details."""
        async with self.db.session() as session:
            stmt = select(Chat).where(Chat.ended == 1)
            if agency_id is not None:
                stmt = stmt.where(Chat.agencyId == agency_id)
            if participant_id is not None:
                stmt = stmt.where(Chat.participantId == participant_id)
            rows = (
                await session.scalars(stmt.order_by(Chat.timeStart.desc(), Chat.id.desc()))
            ).all()
        users = await self.directory.users([c.participantId for c in rows])
        return [views.chat(c, views.participant_details(users.get(c.participantId))) for c in rows]

    async def transcript(self, chat_id: str) -> dict[str, Any] | None:
        """An ended chat with its messages (oldest first), or None."""
        async with self.db.session() as session:
            chat = await _get_chat(session, chat_id)
        if chat is None or not chat.ended:
            return None
        return {"chat": views.chat(chat), "messages": await self.history(chat.id)}

    async def archived_chat(
        self, chat_id: str, *, agency_id: int | None = None, participant_id: int | None = None
    ) -> Chat | None:
        async with self.db.session() as session:
            chat = await _get_chat(session, chat_id)
        if chat is None or not chat.ended:
            return None
        if agency_id is not None and chat.agencyId != agency_id:
            return None
        if participant_id is not None and chat.participantId != participant_id:
            return None
        return chat


SendKey = tuple[str, int, int, str]  # chat, from organizer, author, client id


# Chats per query of ``history_after`` (two bound values each; SQLite's parser takes an OR
# of this many terms well within its expression depth of 1,000).
HISTORY_CHUNK = 200


def _key_params(keys: set[SendKey]) -> dict[str, list[Any]]:
    """``STORED_SENDS``'s (and ``LOCK_CHATS``'s) parameters for these send keys."""
    ordered = sorted(keys)
    return {
        "chats": [k[0] for k in ordered],
        "froms": [k[1] for k in ordered],
        "authors": [k[2] for k in ordered],
        "clients": [k[3] for k in ordered],
    }


def stored_sends_query(keys: set[SendKey]) -> Select[Message]:
    """SQLite's lookup of the messages stored under any of these send keys: an OR of whole
    keys, one lookup each down the unique index (without statistics SQLite read every
    message of the chats for the chat and client ids alone, and it nests IN lists of each
    column into the product of their lengths). PostgreSQL's is ``STORED_SENDS``."""
    return select(Message).where(
        or_(
            *(
                and_(
                    Message.chatId == chat,
                    Message.fromOrganizer == from_organizer,
                    Message.authorId == author,
                    Message.clientId == client,
                )
                for chat, from_organizer, author, client in sorted(keys)
            )
        )
    )


def _send_key(command: dict[str, Any]) -> SendKey | None:
    """What makes a send the same message again: its chat, sender and client id."""
    payload = command.get("payload")
    if command.get("action") != "send_message" or not isinstance(payload, dict):
        return None
    client_id = str(payload.get("clientId") or command["id"])[:64]
    from_organizer = 1 if command.get("realm") == "organizer" else 0
    return (str(payload.get("chatId"))[:32], from_organizer, int(command["userId"]), client_id)


async def _get_chat(session: AsyncSession, chat_id: str) -> Chat | None:
    """The chat with this id; None for an id no chat can have (too long, or text no
    database can compare: NUL, lone surrogates)."""
    if len(chat_id) > 32 or not chat_id.isascii() or "\x00" in chat_id:
        return None
    return await session.get(Chat, chat_id)


def _chat_id(command: dict[str, Any]) -> str:
    payload = command.get("payload")
    return str(payload.get("chatId")) if isinstance(payload, dict) else ""


def _timestamp(value: str) -> dt.datetime:
    """A ``timestamptz`` as PostgreSQL writes it in JSON, in UTC."""
    return dt.datetime.fromisoformat(value).astimezone(dt.UTC)


def _is_coordinate(value: Any, limit: float) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        number = float(value)
    except OverflowError:
        return False
    return number == number and abs(number) <= limit
