"""The messenger database: the agencies' queues, chats and messages, and read models of
staff and agencies. PostgreSQL (or SQLite) is the record; pub/sub only carries updates."""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import Float, ForeignKey, Index, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from aidpost.core.db import NAMING_CONVENTION, UTCDateTime
from aidpost.core.outbox import inbox_table, outbox_table

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Base(DeclarativeBase):
    metadata = metadata


class Staff(Base):
    """Organizer users as the messenger needs them (from ``organizer.changes``)."""

    __tablename__ = "staff_view"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    agencyId: Mapped[int | None] = mapped_column("agency_id", Integer)
    role: Mapped[int] = mapped_column(Integer)


class Agency(Base):
    __tablename__ = "agencies_view"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    approved: Mapped[bool] = mapped_column()


class QueueEntry(Base):
    """A help request waiting for staff of its agency, first in, first out."""

    __tablename__ = "queue_entries"
    __table_args__ = (Index("ix_queue_entries_next", "agency_id", "status", "requested_at"),)

    requestId: Mapped[int] = mapped_column("request_id", primary_key=True, autoincrement=False)
    agencyId: Mapped[int] = mapped_column("agency_id", Integer)
    eventId: Mapped[int] = mapped_column("event_id", Integer)
    participantId: Mapped[int] = mapped_column("participant_id", Integer)
    problemType: Mapped[str] = mapped_column("problem_type", String(20))
    description: Mapped[str] = mapped_column(String(2000))
    lat: Mapped[float | None] = mapped_column(Float)
    lng: Mapped[float | None] = mapped_column(Float)
    requestedAt: Mapped[dt.datetime] = mapped_column("requested_at", UTCDateTime())
    # waiting -> taken (a chat exists) | cancelled
    status: Mapped[str] = mapped_column(String(20))
    chatId: Mapped[str | None] = mapped_column("chat_id", String(32))


class Chat(Base):
    __tablename__ = "chats"
    __table_args__ = (
        Index("ix_chats_organizer", "organizer_id", "ended"),
        Index("ix_chats_participant", "participant_id", "ended"),
        Index("ix_chats_agency", "agency_id", "ended"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    agencyId: Mapped[int] = mapped_column("agency_id", Integer)
    eventId: Mapped[int] = mapped_column("event_id", Integer)
    organizerId: Mapped[int] = mapped_column("organizer_id", Integer)
    participantId: Mapped[int] = mapped_column("participant_id", Integer)
    requestId: Mapped[int] = mapped_column("request_id", Integer, unique=True)
    ended: Mapped[int] = mapped_column(Integer, default=0)
    latStart: Mapped[float | None] = mapped_column("lat_start", Float)
    lngStart: Mapped[float | None] = mapped_column("lng_start", Float)
    timeStart: Mapped[dt.datetime] = mapped_column("time_start", UTCDateTime())
    timeEnd: Mapped[dt.datetime | None] = mapped_column("time_end", UTCDateTime())
    # The sequence number of the chat's latest message; messages are numbered 1, 2, 3...
    lastSeq: Mapped[int] = mapped_column("last_seq", Integer, default=0)
    # The start_chat command that opened it: a redelivered command finds its chat again.
    startCommand: Mapped[str] = mapped_column("start_command", String(64), unique=True)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("chat_id", "seq", name="uq_messages_chat_seq"),
        # A resend (same sender, same client id) is stored once.
        UniqueConstraint(
            "chat_id", "from_organizer", "author_id", "client_id", name="uq_messages_client_id"
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # Looked up by chat through uq_messages_chat_seq (chat_id first): no index of its own.
    chatId: Mapped[str] = mapped_column("chat_id", ForeignKey("chats.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    authorId: Mapped[int] = mapped_column("author_id", Integer)
    fromOrganizer: Mapped[int] = mapped_column("from_organizer", Integer)
    content: Mapped[str] = mapped_column(Text)
    timeSent: Mapped[dt.datetime] = mapped_column("time_sent", UTCDateTime())
    lat: Mapped[float | None] = mapped_column(Float)
    lng: Mapped[float | None] = mapped_column(Float)
    clientId: Mapped[str] = mapped_column("client_id", String(64))


@dataclasses.dataclass(slots=True)
class NewMessage:
    """A message a batch stores: a plain object (cheap to make by the hundred), written with
    one bulk INSERT; the same attributes as ``Message``."""

    id: str
    chatId: str
    seq: int
    authorId: int
    fromOrganizer: int
    content: str
    timeSent: dt.datetime
    lat: float | None
    lng: float | None
    clientId: str

    def row(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
