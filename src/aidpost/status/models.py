"""The status page's database: what is watched (groups, components and their checks), every
check result, incidents and scheduled maintenance with their updates, subscribers and
webhooks, the platform administrators (a read model of ``organizer.changes``), and the
outbox of the notifications it publishes."""

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
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from aidpost.core.db import NAMING_CONVENTION, UTCDateTime
from aidpost.core.outbox import inbox_table, outbox_table

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# Atlassian Statuspage's vocabulary, so that tools that read its API read ours.
COMPONENT_STATUSES = (
    "operational",
    "degraded_performance",
    "partial_outage",
    "major_outage",
    "under_maintenance",
)
INCIDENT_STATUSES = ("investigating", "identified", "monitoring", "resolved", "postmortem")
MAINTENANCE_STATUSES = ("scheduled", "in_progress", "verifying", "completed", "cancelled")
IMPACTS = ("none", "minor", "major", "critical", "maintenance")
CHECK_KINDS = ("http", "tcp", "tls", "manual")


class Base(DeclarativeBase):
    metadata = metadata


class StatusGroup(Base):
    __tablename__ = "groups"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer, default=0)
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    createdAt: Mapped[dt.datetime] = mapped_column("created_at", UTCDateTime())
    updatedAt: Mapped[dt.datetime] = mapped_column("updated_at", UTCDateTime())


class StatusComponent(Base):
    """One thing the public sees a status of, and how the prober checks it."""

    __tablename__ = "components"

    # A slug: stable in URLs (badges, feeds) and in configuration.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    groupId: Mapped[str | None] = mapped_column(
        "group_id", ForeignKey("groups.id", ondelete="SET NULL"), index=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0)
    # Registered from configuration (synchronised at start) or added by an operator.
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    kind: Mapped[str] = mapped_column(String(16))
    # http(s) URL, or host:port for tcp and tls.
    target: Mapped[str | None] = mapped_column(Text)
    # JSON: {"status": [200], "contains": "...", "check": "<name in a /status body>"}.
    expect: Mapped[str] = mapped_column(Text, default="{}")
    intervalSeconds: Mapped[int] = mapped_column("interval_seconds", Integer, default=30)
    timeoutSeconds: Mapped[float] = mapped_column("timeout_seconds", Float, default=5.0)
    # Slower than this (ms) counts as degraded performance.
    degradedMs: Mapped[int | None] = mapped_column("degraded_ms", Integer)
    # Failed checks in a row before the component counts as down (no flapping on one).
    failureThreshold: Mapped[int] = mapped_column("failure_threshold", Integer, default=2)
    # TLS: a certificate that expires within this many days counts as degraded.
    tlsWarnDays: Mapped[int] = mapped_column("tls_warn_days", Integer, default=14)
    # Open an incident by itself after this many minutes down (None: never).
    autoIncidentMinutes: Mapped[int | None] = mapped_column("auto_incident_minutes", Integer)
    onlyShowIfDegraded: Mapped[bool] = mapped_column("only_show_if_degraded", Boolean)
    # Set by an administrator: wins over what checks say (cleared to follow them again).
    manualStatus: Mapped[str | None] = mapped_column("manual_status", String(32))
    # What the public sees now, and since when.
    status: Mapped[str] = mapped_column(String(32), default="operational")
    statusSince: Mapped[dt.datetime] = mapped_column("status_since", UTCDateTime())
    # Consecutive failed checks, and when the current run of failures began.
    failures: Mapped[int] = mapped_column(Integer, default=0)
    downSince: Mapped[dt.datetime | None] = mapped_column("down_since", UTCDateTime())
    lastCheckAt: Mapped[dt.datetime | None] = mapped_column("last_check_at", UTCDateTime())
    createdAt: Mapped[dt.datetime] = mapped_column("created_at", UTCDateTime())
    updatedAt: Mapped[dt.datetime] = mapped_column("updated_at", UTCDateTime())


class CheckResult(Base):
    __tablename__ = "check_results"
    __table_args__ = (Index("ix_check_results_component_at", "component_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    componentId: Mapped[str] = mapped_column(
        "component_id", ForeignKey("components.id", ondelete="CASCADE")
    )
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    ok: Mapped[bool] = mapped_column(Boolean)
    degraded: Mapped[bool] = mapped_column(Boolean, default=False)
    responseMs: Mapped[float | None] = mapped_column("response_ms", Float)
    # Seconds this result stands for (the check interval when it was taken).
    covers: Mapped[float] = mapped_column(Float)
    detail: Mapped[str] = mapped_column(Text, default="")


class UptimeDay(Base):
    """Seconds up, down, in maintenance and without data of one component on one UTC day;
    written once the day is over (the results of a past day no longer change)."""

    __tablename__ = "uptime_days"

    componentId: Mapped[str] = mapped_column(
        "component_id", ForeignKey("components.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD
    up: Mapped[float] = mapped_column(Float)
    down: Mapped[float] = mapped_column(Float)
    degraded: Mapped[float] = mapped_column(Float)
    maintenance: Mapped[float] = mapped_column(Float)
    nodata: Mapped[float] = mapped_column(Float)


class Incident(Base):
    """An incident, or (``kind == "maintenance"``) a scheduled maintenance, as Statuspage
    models both: a title, a status, an impact, affected components and timed updates."""

    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_kind_status", "kind", "status"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(32))
    impact: Mapped[str] = mapped_column(String(16))
    # Opened by the prober for a component that stayed down (and resolved by it).
    autoFor: Mapped[str | None] = mapped_column("auto_for", String(64), index=True)
    scheduledFor: Mapped[dt.datetime | None] = mapped_column("scheduled_for", UTCDateTime())
    scheduledUntil: Mapped[dt.datetime | None] = mapped_column("scheduled_until", UTCDateTime())
    # Maintenance: move to in_progress / completed by the clock.
    autoTransition: Mapped[bool] = mapped_column("auto_transition", Boolean, default=True)
    startedAt: Mapped[dt.datetime] = mapped_column("started_at", UTCDateTime())
    # Maintenance: when it really went in progress (None: it never did). Its window, left
    # out of uptime, runs from here to resolvedAt.
    beganAt: Mapped[dt.datetime | None] = mapped_column("began_at", UTCDateTime())
    monitoringAt: Mapped[dt.datetime | None] = mapped_column("monitoring_at", UTCDateTime())
    resolvedAt: Mapped[dt.datetime | None] = mapped_column("resolved_at", UTCDateTime())
    createdAt: Mapped[dt.datetime] = mapped_column("created_at", UTCDateTime())
    updatedAt: Mapped[dt.datetime] = mapped_column("updated_at", UTCDateTime())


class IncidentComponent(Base):
    """A component an incident affects, and the status it gives the component meanwhile."""

    __tablename__ = "incident_components"

    incidentId: Mapped[str] = mapped_column(
        "incident_id", ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True
    )
    componentId: Mapped[str] = mapped_column(
        "component_id", ForeignKey("components.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(32))


class IncidentUpdate(Base):
    __tablename__ = "incident_updates"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    incidentId: Mapped[str] = mapped_column(
        "incident_id", ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    # 0 for the first update of an incident, then 1, 2 ... (times may be equal).
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    # JSON list of {code, name, old_status, new_status}.
    affected: Mapped[str] = mapped_column(Text, default="[]")
    actor: Mapped[str] = mapped_column(String(100))
    createdAt: Mapped[dt.datetime] = mapped_column("created_at", UTCDateTime())


class IncidentTemplate(Base):
    """Prepared words for an incident that happens again (a name, a first update, an impact
    and the components it usually affects), picked when opening one."""

    __tablename__ = "incident_templates"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(32))
    impact: Mapped[str] = mapped_column(String(16))
    # JSON list of {id, status}.
    components: Mapped[str] = mapped_column(Text, default="[]")
    updatedAt: Mapped[dt.datetime] = mapped_column("updated_at", UTCDateTime())


class Subscriber(Base):
    """An email subscriber: confirmed by a link (double opt-in); unsubscribed by one."""

    __tablename__ = "subscribers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    # The address in lower case: one subscriber per address, whatever its spelling.
    emailKey: Mapped[str] = mapped_column("email_key", String(320), unique=True)
    # JSON list of component ids, or null for every component.
    components: Mapped[str | None] = mapped_column(Text)
    # The choice waiting for its confirmation: JSON {"components": [...] | null}.
    pending: Mapped[str | None] = mapped_column(Text)
    # SHA-256 of the confirmation token (the token itself only travels in the email).
    confirmHash: Mapped[str | None] = mapped_column("confirm_hash", String(64), unique=True)
    # The one-click unsubscribe token, in every notification.
    unsubscribeToken: Mapped[str] = mapped_column("unsubscribe_token", String(64), unique=True)
    confirmedAt: Mapped[dt.datetime | None] = mapped_column("confirmed_at", UTCDateTime())
    confirmSentAt: Mapped[dt.datetime | None] = mapped_column("confirm_sent_at", UTCDateTime())
    createdAt: Mapped[dt.datetime] = mapped_column("created_at", UTCDateTime())


class Webhook(Base):
    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(128))
    components: Mapped[str | None] = mapped_column(Text)
    createdAt: Mapped[dt.datetime] = mapped_column("created_at", UTCDateTime())


class WebhookDelivery(Base):
    """One notification to one webhook: retried with backoff until it is taken (2xx)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "state", "next_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    webhookId: Mapped[str] = mapped_column(
        "webhook_id", ForeignKey("webhooks.id", ondelete="CASCADE"), index=True
    )
    payload: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))  # pending, delivered, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    nextAt: Mapped[dt.datetime] = mapped_column("next_at", UTCDateTime())
    lastError: Mapped[str | None] = mapped_column("last_error", Text)
    createdAt: Mapped[dt.datetime] = mapped_column("created_at", UTCDateTime())


class Admin(Base):
    """Platform administrators (organizer roles 0 and 1), from ``organizer.changes``."""

    __tablename__ = "admins_view"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    role: Mapped[int] = mapped_column(Integer)


inbox = inbox_table(metadata)
outbox = outbox_table(metadata)
