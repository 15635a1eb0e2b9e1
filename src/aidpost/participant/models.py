"""The participant database. Participants' data lives here only, never beside organizers'."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from aidpost.core.db import NAMING_CONVENTION, UTCDateTime
from aidpost.core.outbox import inbox_table, outbox_table

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Base(DeclarativeBase):
    metadata = metadata


# Ids name people and things in tokens, events and other components' data: never reuse one
# (SQLite would hand a deleted row's id to the next insert without AUTOINCREMENT).
NEVER_REUSE_IDS = {"sqlite_autoincrement": True}


class Participant(Base):
    __tablename__ = "participants"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    phoneNumber: Mapped[str] = mapped_column("phone_number", String(30))
    timeCreated: Mapped[dt.datetime] = mapped_column("time_created", UTCDateTime())
    timeSignOut: Mapped[dt.datetime] = mapped_column("time_sign_out", UTCDateTime())


class AgencyView(Base):
    """The organizer's agencies as far as participants care: approved or not."""

    __tablename__ = "agencies_view"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    approved: Mapped[bool] = mapped_column(Boolean)


class EventView(Base):
    """The organizer's events, kept current from ``organizer.changes`` (a read model)."""

    __tablename__ = "events_view"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(2000))
    address: Mapped[str] = mapped_column(String(400))
    lat: Mapped[float] = mapped_column(Float)
    lng: Mapped[float] = mapped_column(Float)
    timeStart: Mapped[dt.datetime] = mapped_column("time_start", UTCDateTime(), index=True)
    timeEnd: Mapped[dt.datetime] = mapped_column("time_end", UTCDateTime(), index=True)
    agencyId: Mapped[int] = mapped_column("agency_id", Integer, index=True)


class HelpRequest(Base):
    """A participant's request for help at an event, from asking until its chat ends."""

    __tablename__ = "help_requests"
    __table_args__ = (
        Index("ix_help_requests_queue", "agency_id", "status", "requested_at"),
        NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participantId: Mapped[int | None] = mapped_column(
        "participant_id", ForeignKey("participants.id", ondelete="SET NULL"), index=True
    )
    eventId: Mapped[int] = mapped_column("event_id", Integer)
    agencyId: Mapped[int] = mapped_column("agency_id", Integer)
    problemType: Mapped[str] = mapped_column("problem_type", String(20))
    description: Mapped[str] = mapped_column(String(2000))
    lat: Mapped[float | None] = mapped_column(Float)
    lng: Mapped[float | None] = mapped_column(Float)
    # waiting -> claimed (a chat started) -> closed; waiting -> cancelled
    status: Mapped[str] = mapped_column(String(20))
    requestedAt: Mapped[dt.datetime] = mapped_column("requested_at", UTCDateTime())
    claimedAt: Mapped[dt.datetime | None] = mapped_column("claimed_at", UTCDateTime())
    endedAt: Mapped[dt.datetime | None] = mapped_column("ended_at", UTCDateTime())
    chatId: Mapped[str | None] = mapped_column("chat_id", String(64))
    # The participant asked for the conversation by email once the chat ends.
    sendTranscript: Mapped[bool] = mapped_column(
        "send_transcript", Boolean, default=False, server_default="0"
    )


class HelpLock(Base):
    """ESME's chat request lock: one open request per participant and event."""

    __tablename__ = "help_locks"

    participantId: Mapped[int] = mapped_column(
        "participant_id",
        ForeignKey("participants.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    )
    eventId: Mapped[int] = mapped_column("event_id", Integer, primary_key=True, autoincrement=False)
    requestId: Mapped[int] = mapped_column(
        "request_id", ForeignKey("help_requests.id", ondelete="CASCADE"), unique=True
    )


outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
