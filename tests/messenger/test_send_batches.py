"""Batches of sends handled by the consumer's service, the same on both databases: SQLite
takes the ORM path, PostgreSQL its plain-SQL path for batches of sends only. One batch
holds new messages, a resend in the same batch, refusals; the next ones redeliver. What is
stored, how it is numbered and what each user and sender is told must not differ."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from aidpost.core.bus import Event
from aidpost.core.clock import SystemClock
from aidpost.core.db import Database
from aidpost.core.directory import LocalDirectory
from aidpost.core.hub import MemoryHub
from aidpost.core.migrate import upgrade
from aidpost.messenger.models import Chat, Message
from aidpost.messenger.service import (
    LOCK_CHATS,
    STORE_SENDS,
    STORED_SENDS,
    MessengerService,
    _key_params,
    gateway_channel,
    open_envelope,
    stored_sends_query,
    user_channel,
)
from tests.conftest import Databases

STAFF, PARTICIPANT, STRANGER = 11, 22, 33


async def no_users(ids: list[int]) -> dict[str, Any]:
    return {}


class Heard:
    """What the hub carried, per channel: (header, frame) in order."""

    def __init__(self) -> None:
        self.items: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}

    def __call__(self, channel: str, data: bytes) -> None:
        import json

        header, text = open_envelope(data)
        self.items.setdefault(channel, []).append((header, json.loads(text)))

    def take(self, channel: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        return self.items.pop(channel, [])


@pytest.fixture
async def world(databases: Databases) -> AsyncIterator[tuple[MessengerService, Heard]]:
    db = Database(databases.urls["messenger"])
    await upgrade(db, "messenger")
    hub, heard = MemoryHub(), Heard()
    for channel in (
        user_channel("organizer", STAFF),
        user_channel("participant", PARTICIPANT),
        gateway_channel("gw"),
    ):
        await hub.subscribe(channel, heard)
    service = MessengerService(
        db, SystemClock(), hub, LocalDirectory(no_users), max_message_chars=20
    )
    async with db.transaction() as session:
        for chat_id, ended in (("open", 0), ("ended", 1)):
            session.add(
                Chat(
                    id=chat_id,
                    agencyId=1,
                    eventId=1,
                    organizerId=STAFF,
                    participantId=PARTICIPANT,
                    requestId=1 + ended,
                    ended=ended,
                    timeStart=dt.datetime.now(dt.UTC),
                    lastSeq=0,
                    startCommand=f"start-{chat_id}",
                )
            )
    yield service, heard
    await db.dispose()


def send(user: int, payload: dict[str, Any], *, conn: str, command_id: str) -> Event:
    realm = "organizer" if user == STAFF else "participant"
    data = {
        "action": "send_message",
        "realm": realm,
        "userId": user,
        "agencyId": 1 if user == STAFF else None,
        "gateway": "gw",
        "conn": conn,
        "payload": payload,
    }
    return Event("messenger.command.v1", data, id=command_id)


def payloads(heard: Heard, channel: str) -> list[dict[str, Any]]:
    out = []
    for header, frame in heard.take(channel):
        assert frame["type"] == "user_message" and header["seq"] == frame["payload"]["seq"]
        out.append(frame["payload"])
    return out


def brief(told: list[dict[str, Any]]) -> list[tuple[int, str, str]]:
    return [(m["seq"], m["content"], m["clientId"]) for m in told]


def messages(heard: Heard, channel: str) -> list[tuple[int, str, str]]:
    return brief(payloads(heard, channel))


async def test_a_batch_of_sends_is_numbered_stored_and_told_alike_on_both_databases(
    world: tuple[MessengerService, Heard],
) -> None:
    service, heard = world
    here = {"lat": 52.2, "lng": 21.0}
    batch = [
        send(PARTICIPANT, {"chatId": "open", "message": "help", "clientId": "p-1", **here},
             conn="p", command_id="c1"),
        send(STAFF, {"chatId": "open", "message": "coming", **here}, conn="s", command_id="c2"),
        send(PARTICIPANT, {"chatId": "open", "message": "help", "clientId": "p-1"},
             conn="p", command_id="c3"),  # the phone's resend, in the same batch
        send(STRANGER, {"chatId": "open", "message": "hi"}, conn="x", command_id="c4"),
        send(PARTICIPANT, {"chatId": "open", "message": "x" * 21}, conn="p", command_id="c5"),
        send(PARTICIPANT, {"chatId": "open", "message": 5}, conn="p", command_id="c6"),
        send(PARTICIPANT, {"chatId": "ended", "message": "late"}, conn="p", command_id="c7"),
        send(PARTICIPANT, {"chatId": "nowhere", "message": "?"}, conn="p", command_id="c8"),
        send(PARTICIPANT, {"chatId": "open", "message": "ok", "lat": 91, "lng": 0},
             conn="p", command_id="c9"),
    ]  # fmt: skip
    await service.handle_commands(batch)

    told = [(1, "help", "p-1"), (2, "coming", "c2"), (1, "help", "p-1"), (3, "ok", "c9")]
    first = payloads(heard, user_channel("participant", PARTICIPANT))
    assert brief(first) == told
    assert messages(heard, user_channel("organizer", STAFF)) == told
    errors = [(h["conn"], f["payload"]["message"]) for h, f in heard.take(gateway_channel("gw"))]
    assert errors == [
        ("x", "you have no access to chat open"),
        ("p", "message must be at most 20 characters"),
        ("p", "invalid message payload"),
        ("p", "you have no access to chat ended"),
        ("p", "you have no access to chat nowhere"),
    ]
    history = await service.history("open")
    assert [(m["seq"], m["content"], m["clientId"]) for m in history] == [
        (1, "help", "p-1"),
        (2, "coming", "c2"),
        (3, "ok", "c9"),
    ]
    # the participant's place is kept, the staff member's and an impossible one are not
    assert (history[0]["lat"], history[0]["lng"]) == (52.2, 21.0)
    assert "lat" not in history[1] and "lat" not in history[2]
    async with service.db.session() as session:
        assert (await session.scalar(select(Chat.lastSeq).where(Chat.id == "open"))) == 3

    # The batch again (its consumer died before acknowledging it), then the phone's third
    # try: nothing is stored twice, and what was stored is told again as it was.
    await service.handle_commands([batch[0], batch[1]])
    await service.handle_commands(
        [send(PARTICIPANT, {"chatId": "open", "message": "help", "clientId": "p-1"},
              conn="p", command_id="c10"),
         send(PARTICIPANT, {"chatId": "open", "message": "still here"}, conn="p",
              command_id="c11")]
    )  # fmt: skip
    again = payloads(heard, user_channel("participant", PARTICIPANT))
    assert brief(again) == [(1, "help", "p-1"), (2, "coming", "c2"), (1, "help", "p-1"),
                            (4, "still here", "c11")]  # fmt: skip
    assert again[:3] == first[:3]  # told again exactly as first told: id, time, place
    heard.take(user_channel("organizer", STAFF))
    history_after = await service.history("open")
    assert [m["seq"] for m in history_after] == [1, 2, 3, 4]
    assert history_after[0] == history[0]  # time, place and id as first stored


async def test_the_resend_check_goes_down_the_unique_index(tmp_path: Path) -> None:
    """The ORM path's lookup of stored sends (SQLite's; PostgreSQL's batches of sends take
    the plain-SQL path) is one lookup per send key down the unique index, for a batch of
    100 sends from 100 senders as for one: not every message of the batch's chats (the chat
    and client ids alone, without statistics) nor the product of per-column IN lists."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'messenger.db'}")
    await upgrade(db, "messenger")
    for keys in (
        {("open", 0, PARTICIPANT, "a")},
        {(f"chat{n % 50}", n % 2, 1000 + n, f"client{n}") for n in range(100)},
    ):
        compiled = stored_sends_query(keys).compile(
            dialect=db.engine.dialect, compile_kwargs={"literal_binds": True}
        )
        async with db.session() as session:
            rows = await session.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))
            steps = [str(r[-1]) for r in rows]
        searches = [s for s in steps if s.startswith(("SEARCH", "SCAN"))]
        # SQLite names a table's UNIQUE constraints' indexes itself.
        whole_key = "(chat_id=? AND from_organizer=? AND author_id=? AND client_id=?)"
        assert searches and all(whole_key in s for s in searches), steps
    await db.dispose()


async def test_history_after_reads_many_chats_in_few_queries(
    world: tuple[MessengerService, Heard],
) -> None:
    """A resynchronisation's read: each chat's messages after its own sequence number, the
    same as ``history`` per chat, in one query per 200 chats (not one per chat)."""
    from sqlalchemy import event

    from aidpost.messenger.models import Message
    from aidpost.messenger.service import HISTORY_CHUNK

    service, _heard = world
    chats = [f"c{n:03}" for n in range(2 * HISTORY_CHUNK + 50)]
    now = dt.datetime.now(dt.UTC)
    async with service.db.transaction() as session:
        for n, chat_id in enumerate(chats):
            count = n % 4  # some chats have nothing
            session.add(
                Chat(id=chat_id, agencyId=1, eventId=1, organizerId=STAFF,
                     participantId=PARTICIPANT, requestId=100 + n, ended=0, timeStart=now,
                     lastSeq=count, startCommand=f"start-{chat_id}")
            )  # fmt: skip
            await session.flush()
            for seq in range(1, count + 1):
                session.add(
                    Message(id=f"{chat_id}-{seq}", chatId=chat_id, seq=seq, authorId=PARTICIPANT,
                            fromOrganizer=0, content=f"{chat_id} {seq}", timeSent=now,
                            clientId=f"k{seq}")
                )  # fmt: skip
    after = {chat_id: n % 3 for n, chat_id in enumerate(chats)}  # seen 0, 1 or 2
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    engine = service.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        found = await service.history_after(after)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == 3  # 450 chats: 200 + 200 + 50
    expected = {}
    for chat_id, seen in after.items():
        if messages := await service.history(chat_id, seen):
            expected[chat_id] = messages
    assert found == expected
    assert sum(map(len, found.values())) > 100
    assert await service.history_after({}) == {}


def test_ids_are_laid_out_as_objectids_and_sort_by_time() -> None:
    """24 hex characters as ESME's MongoDB ids: the seconds first (the primary key's B-tree
    then grows at one end), unique, and in the order they were made within a second."""
    import time

    from aidpost.messenger.service import new_id

    before = int(time.time())
    ids = [new_id() for _ in range(10_000)]
    assert all(len(i) == 24 and int(i, 16) >= 0 for i in ids)
    assert len(set(ids)) == len(ids)
    assert before <= int(ids[0][:8], 16) <= int(ids[-1][:8], 16) <= int(time.time())
    same_second = [i for i in ids if i[:8] == ids[-1][:8]]
    assert same_second == sorted(same_second) or same_second[-1][-6:] < same_second[0][-6:]


async def test_messages_keep_the_indexes_their_lookups_use(databases: Databases) -> None:
    """Lookups by chat go down uq_messages_chat_seq (chat_id first); resends down
    uq_messages_client_id; no other index makes every insert pay."""
    from sqlalchemy import inspect

    db = Database(databases.urls["messenger"])
    try:
        await upgrade(db, "messenger")
        async with db.engine.connect() as conn:
            names = await conn.run_sync(
                lambda c: {
                    *(i["name"] for i in inspect(c).get_indexes("messages")),
                    *(u["name"] for u in inspect(c).get_unique_constraints("messages")),
                }
            )
        assert names == {"uq_messages_chat_seq", "uq_messages_client_id"}
    finally:
        await db.dispose()


@pytest.mark.parametrize("databases", [pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)  # fmt: skip
async def test_a_batch_of_sends_probes_the_indexes_after_the_tables_grew(
    world: tuple[MessengerService, Heard],
) -> None:
    """PostgreSQL's statements for a batch of sends find each chat and each send key with a
    probe of a unique index, also on a connection that ran them while the tables were nearly
    empty and after the messages table grew without statistics gathered (asyncpg keeps its
    statements prepared; PostgreSQL's generic plan made early joined the batch's keys to a
    sequential scan of every message: 6.7 ms a batch in a relay run of 27 s at 2,000
    messages/s). What the statements read is counted by PostgreSQL for the transaction."""
    service, _heard = world
    async with service.db.session() as session:
        # A generic plan of these statements, made while the messages table is small, probes
        # the chat's index of sequence numbers and reads every message of the chat (a relay
        # run with generic plans was slower than before the probes): each run is planned.
        assert await session.scalar(text("SHOW plan_cache_mode")) == "force_custom_plan"
    for n in range(8):  # more than the five runs after which PostgreSQL may plan generically
        await service.handle_commands(
            [send(PARTICIPANT, {"chatId": "open", "message": f"m{n}"}, conn="p",
                  command_id=f"prime{n}")]
        )  # fmt: skip
    grown = 20_000
    async with service.db.transaction() as session:
        await session.execute(
            text(
                "INSERT INTO messages (id, chat_id, seq, author_id, from_organizer, content,"
                " time_sent, client_id) SELECT 'old' || n, 'open', 100 + n, :author, 0, 'x',"
                " now(), 'old' || n FROM generate_series(1, :grown) AS n"
            ),
            {"author": PARTICIPANT, "grown": grown},
        )
        await session.execute(text("UPDATE chats SET last_seq = 100 + :grown"), {"grown": grown})
    keys = {("open", 0, PARTICIPANT, f"new{n}") for n in range(20)} | {
        ("open", 0, PARTICIPANT, "old7")
    }
    async with service.db.transaction() as session:
        before = await rows_read(session)
        rows = (await session.execute(LOCK_CHATS, {"ids": ["open"], **_key_params(keys)})).all()
        found = (await session.scalars(select(Message).from_statement(STORED_SENDS),
                                       _key_params(keys))).all()  # fmt: skip
        await session.execute(
            STORE_SENDS,
            {"ids": ["open"], "last": [100 + grown + 1], "id": ["new"], "chat_id": ["open"],
             "seq": [100 + grown + 1], "author_id": [PARTICIPANT], "from_organizer": [0],
             "content": ["y"], "time_sent": [dt.datetime.now(dt.UTC)], "lat": [None],
             "lng": [None], "client_id": ["new0"]},
        )  # fmt: skip
        after = await rows_read(session)
    stored = rows[0][5] if not isinstance(rows[0][5], str) else json.loads(rows[0][5])
    assert [r[0] for r in rows] == ["open"] and [m[8] for m in stored] == ["old7"]
    assert [m.clientId for m in found] == ["old7"]
    read = {table: [a - b for a, b in zip(after[table], before[table], strict=True)]
            for table in after}  # fmt: skip
    # No message read by a sequential scan, a few by index: not the chat's 20,000.
    assert read["messages"][0] == 0 and read["messages"][1] < 50, read
    assert sum(read["chats"]) < 10, read


async def rows_read(session: Any) -> dict[str, tuple[int, int]]:
    """Rows this connection read from the messenger's two tables, by sequential scan and by
    index, as PostgreSQL counts them (this transaction's and those not yet reported)."""
    rows = await session.execute(
        text(
            "SELECT relname, coalesce(seq_tup_read, 0), coalesce(idx_tup_fetch, 0)"
            " FROM pg_stat_xact_user_tables WHERE relname IN ('messages', 'chats')"
        )
    )
    return {r[0]: (r[1], r[2]) for r in rows}
