"""The mailer database: every email aidpost sends (a scheduled-email row with a state
machine), the log of its state changes, the editable templates, and read models of the
organizer's users, agencies and events (recipients and "before" values of changes)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from aidpost.core.db import NAMING_CONVENTION, UTCDateTime
from aidpost.core.outbox import inbox_table

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# scheduled -> locked (a worker holds a lease) -> succeeded | scheduled (retry) | failed;
# scheduled/locked -> cancelled (by a person, a cancelling event, or expiry).
STATES = ("scheduled", "locked", "succeeded", "failed", "cancelled")
OPEN_STATES = ("scheduled", "locked")


class Base(DeclarativeBase):
    metadata = metadata


class ScheduledEmail(Base):
    __tablename__ = "scheduled_emails"
    __table_args__ = (
        # One email per job and triggering event: a redelivered event schedules nothing new.
        UniqueConstraint("job", "trigger_id", name="uq_scheduled_emails_trigger"),
        Index("ix_scheduled_emails_due", "state", "send_at"),
        Index("ix_scheduled_emails_source", "job", "source_key", "state"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    job: Mapped[str] = mapped_column(String(100))
    # What the email is about ("event:12", "request:7"): a later change of the same source
    # reschedules or cancels the email while it is not sent.
    sourceKey: Mapped[str] = mapped_column("source_key", String(200))
    triggerId: Mapped[str] = mapped_column("trigger_id", String(64))
    state: Mapped[str] = mapped_column(String(16))
    # Recipient specifications (JSON), resolved to addresses when the email is sent.
    recipients: Mapped[str] = mapped_column(Text)
    template: Mapped[str] = mapped_column(String(100))
    context: Mapped[str] = mapped_column(Text)  # JSON
    sendAt: Mapped[dt.datetime] = mapped_column("send_at", UTCDateTime())
    # Not sent by then (e.g. the event it announces has begun): cancelled instead.
    expiresAt: Mapped[dt.datetime | None] = mapped_column("expires_at", UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    maxAttempts: Mapped[int] = mapped_column("max_attempts", Integer)
    lockedBy: Mapped[str | None] = mapped_column("locked_by", String(64))
    lockedUntil: Mapped[dt.datetime | None] = mapped_column("locked_until", UTCDateTime())
    # Set by a claim: the worker whose lease had lapsed, if the email was taken from one.
    claimedFrom: Mapped[str | None] = mapped_column("claimed_from", String(64))
    # The idempotency key: every attempt of this email carries the same Message-ID.
    messageId: Mapped[str] = mapped_column("message_id", String(200), unique=True)
    subject: Mapped[str | None] = mapped_column(String(998))
    sentTo: Mapped[str | None] = mapped_column("sent_to", Text)  # JSON list
    lastError: Mapped[str | None] = mapped_column("last_error", Text)
    resendOf: Mapped[str | None] = mapped_column("resend_of", String(32))
    createdAt: Mapped[dt.datetime] = mapped_column("created_at", UTCDateTime())
    updatedAt: Mapped[dt.datetime] = mapped_column("updated_at", UTCDateTime())


class EmailLog(Base):
    """Every state change of an email, with who or what made it."""

    __tablename__ = "email_logs"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    emailId: Mapped[str] = mapped_column(
        "email_id", ForeignKey("scheduled_emails.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    fromState: Mapped[str | None] = mapped_column("from_state", String(16))
    toState: Mapped[str] = mapped_column("to_state", String(16))
    actor: Mapped[str] = mapped_column(String(100))
    note: Mapped[str] = mapped_column(Text, default="")


class Template(Base):
    """A Jinja2 template: subject, text part, optional HTML part. Shipped templates are
    copied in at start; one edited through the API is never overwritten by a deploy."""

    __tablename__ = "templates"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    subject: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    edited: Mapped[int] = mapped_column(Integer, default=0)
    updatedAt: Mapped[dt.datetime] = mapped_column("updated_at", UTCDateTime())
    updatedBy: Mapped[str] = mapped_column("updated_by", String(100))


class Person(Base):
    """Organizer users, as recipients (from ``organizer.changes``)."""

    __tablename__ = "people_view"
    __table_args__ = (Index("ix_people_view_agency", "agency_id", "role"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    email: Mapped[str] = mapped_column(String(320))
    firstName: Mapped[str] = mapped_column("first_name", String(100))
    lastName: Mapped[str] = mapped_column("last_name", String(100))
    role: Mapped[int] = mapped_column(Integer)
    agencyId: Mapped[int | None] = mapped_column("agency_id", Integer)


class Snapshot(Base):
    """The latest state of an organizer agency or event, so a job can compare before and
    after (an agency approved is an update whose ``approved`` went from 0 to 1)."""

    __tablename__ = "snapshots"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    data: Mapped[str] = mapped_column(Text)


inbox = inbox_table(metadata)
