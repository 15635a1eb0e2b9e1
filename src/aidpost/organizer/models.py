"""The organizer database (ESME's organizer entities, plus outbox).

Deliberate differences from ESME, so that nothing is lost: changelog rows keep plain
``userId``/``agencyId`` numbers (no cascade), so deleting a user or agency never deletes
the audit trail; issues and comments keep their rows when their author is deleted
(``authorId`` becomes null) instead of vanishing with them.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from aidpost.core.db import NAMING_CONVENTION, UTCDateTime
from aidpost.core.outbox import inbox_table, outbox_table

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Base(DeclarativeBase):
    metadata = metadata


# Ids name people and things in tokens, events and other components' data: never reuse one
# (SQLite would hand a deleted row's id to the next insert without AUTOINCREMENT).
NEVER_REUSE_IDS = {"sqlite_autoincrement": True}


class Role(enum.IntEnum):
    superAdmin = 0
    admin = 1
    agencyOwner = 2
    agencyManager = 3
    agencySupport = 4


class Agency(Base):
    __tablename__ = "agencies"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    address: Mapped[str] = mapped_column(String(400))
    website: Mapped[str | None] = mapped_column(String(400))
    approved: Mapped[bool] = mapped_column(Boolean, default=False)


class User(Base):
    __tablename__ = "users"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    firstName: Mapped[str] = mapped_column("first_name", String(100))
    lastName: Mapped[str] = mapped_column("last_name", String(100))
    phoneNumber: Mapped[str] = mapped_column("phone_number", String(30))
    timeCreated: Mapped[dt.datetime] = mapped_column("time_created", UTCDateTime())
    timeSignOut: Mapped[dt.datetime] = mapped_column("time_sign_out", UTCDateTime())
    role: Mapped[int] = mapped_column(Integer)
    agencyId: Mapped[int | None] = mapped_column(
        "agency_id", ForeignKey("agencies.id", ondelete="SET NULL"), index=True
    )


class Event(Base):
    __tablename__ = "events"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(String(2000))
    address: Mapped[str] = mapped_column(String(400))
    lat: Mapped[float] = mapped_column(Float)
    lng: Mapped[float] = mapped_column(Float)
    timeStart: Mapped[dt.datetime] = mapped_column("time_start", UTCDateTime(), index=True)
    timeEnd: Mapped[dt.datetime] = mapped_column("time_end", UTCDateTime())
    agencyId: Mapped[int] = mapped_column(
        "agency_id", ForeignKey("agencies.id", ondelete="CASCADE"), index=True
    )


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    firstName: Mapped[str] = mapped_column("first_name", String(100))
    lastName: Mapped[str] = mapped_column("last_name", String(100))
    email: Mapped[str] = mapped_column(String(320))
    phoneNumber: Mapped[str] = mapped_column("phone_number", String(30))
    additionalNotes: Mapped[str] = mapped_column("additional_notes", String(2000))
    eventId: Mapped[int] = mapped_column(
        "event_id", ForeignKey("events.id", ondelete="CASCADE"), index=True
    )
    agencyId: Mapped[int] = mapped_column(
        "agency_id", ForeignKey("agencies.id", ondelete="CASCADE"), index=True
    )


class Issue(Base):
    __tablename__ = "issues"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(50))
    priority: Mapped[str] = mapped_column(String(50))
    timeCreated: Mapped[dt.datetime] = mapped_column("time_created", UTCDateTime())
    timeClosed: Mapped[dt.datetime | None] = mapped_column("time_closed", UTCDateTime())
    authorId: Mapped[int | None] = mapped_column(
        "author_id", ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    eventId: Mapped[int] = mapped_column(
        "event_id", ForeignKey("events.id", ondelete="CASCADE"), index=True
    )
    agencyId: Mapped[int] = mapped_column(
        "agency_id", ForeignKey("agencies.id", ondelete="CASCADE"), index=True
    )


class Comment(Base):
    __tablename__ = "comments"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    content: Mapped[str] = mapped_column(String(2000))
    timeCreated: Mapped[dt.datetime] = mapped_column("time_created", UTCDateTime())
    authorId: Mapped[int | None] = mapped_column(
        "author_id", ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    issueId: Mapped[int] = mapped_column(
        "issue_id", ForeignKey("issues.id", ondelete="CASCADE"), index=True
    )
    agencyId: Mapped[int] = mapped_column(
        "agency_id", ForeignKey("agencies.id", ondelete="CASCADE"), index=True
    )


class Changelog(Base):
    __tablename__ = "changelogs"
    __table_args__ = NEVER_REUSE_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    entityId: Mapped[int] = mapped_column("entity_id", Integer)
    entityClass: Mapped[str] = mapped_column("entity_class", String(200))
    type: Mapped[str] = mapped_column(String(200))
    changedAt: Mapped[dt.datetime] = mapped_column("changed_at", UTCDateTime())
    valueAfter: Mapped[str | None] = mapped_column("value_after", JSON)
    userId: Mapped[int | None] = mapped_column("user_id", Integer, index=True)
    agencyId: Mapped[int | None] = mapped_column("agency_id", Integer, index=True)


outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
