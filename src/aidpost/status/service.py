"""The status page's service: components and their status, check results and uptime,
incidents and maintenance with their updates, subscribers and webhooks.

A component's public status is, in order of precedence: the status an administrator set
by hand; ``under_maintenance`` while a maintenance affecting it is in progress; otherwise
the worst of what its checks say (down after ``failure_threshold`` failures in a row,
degraded when slow or a certificate is near its end) and what open incidents give it.

Every incident or maintenance update that asks to notify publishes, through the outbox in
the same transaction, one ``status.notification.v1`` event per confirmed subscriber of an
affected component (the mailer sends it: one email per subscriber and update, whatever is
redelivered) and stores one signed delivery per webhook.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from aidpost.core.bus import Event as BusEvent
from aidpost.core.clock import Clock
from aidpost.core.db import Database
from aidpost.core.errors import BadRequest, Conflict, NotFound
from aidpost.core.outbox import first_time, publish
from aidpost.status import uptime
from aidpost.status.checks import Outcome, Spec
from aidpost.status.config import GroupConfig
from aidpost.status.models import (
    Admin,
    CheckResult,
    Incident,
    IncidentComponent,
    IncidentTemplate,
    IncidentUpdate,
    StatusComponent,
    StatusGroup,
    Subscriber,
    UptimeDay,
    Webhook,
    WebhookDelivery,
    inbox,
    outbox,
)

log = logging.getLogger("aidpost.status")
NOTIFY_STREAM = "status.notifications"
ADMIN_ROLES = (0, 1)
# Worst last: the order in which statuses win over each other.
SEVERITY = {
    "operational": 0,
    "degraded_performance": 1,
    "partial_outage": 2,
    "major_outage": 3,
    "under_maintenance": -1,
}
OPEN_INCIDENT = ("investigating", "identified", "monitoring")
OPEN_MAINTENANCE = ("scheduled", "in_progress", "verifying")
DAY = dt.timedelta(days=1)
# At most one confirmation email per address in this time.
CONFIRM_COOLDOWN = dt.timedelta(minutes=5)


def new_id() -> str:
    return uuid.uuid4().hex


def key(value: str) -> str:
    """An id or token as stored (ASCII, short, no NUL); anything else finds nothing."""
    if not value.isascii() or "\x00" in value or len(value) > 64:
        return "-"
    return value


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _worst(statuses: Iterable[str]) -> str:
    return max(statuses, key=lambda s: SEVERITY.get(s, 0), default="operational")


@dataclass(frozen=True)
class Affected:
    """A component an incident touches, and the status it gives it."""

    component: str
    status: str


class StatusService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        public_url: str,
        page_name: str,
        on_commit: Callable[[], None] = lambda: None,
        cache_seconds: float = 5.0,
        slack_seconds: float = 1.0,
    ) -> None:
        self.db, self.clock = db, clock
        self.public_url = public_url.rstrip("/")
        self.page_name = page_name
        self.on_commit = on_commit
        # What the public reads, kept for a few seconds: a status page is read far more
        # often than it changes. Every change here clears it.
        self.cache_seconds = cache_seconds
        self.slack_seconds = slack_seconds
        self._cache: dict[str, tuple[float, Any]] = {}
        self._generation = 0

    def _changed(self) -> None:
        self._generation += 1
        self._cache.clear()
        self.on_commit()

    async def cached(self, key: str, factory: Callable[[], Awaitable[Any]]) -> Any:
        """``factory()``'s value, computed at most once per ``cache_seconds``. A value whose
        computation overlapped a change is served to its caller but not kept."""
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self.cache_seconds:
            return hit[1]
        generation = self._generation
        value = await factory()
        if generation == self._generation:
            self._cache[key] = (now, value)
        return value

    # -- configuration -----------------------------------------------------------------

    async def sync(self, groups: Sequence[GroupConfig]) -> None:
        """Make the configured (built-in) groups and components those of ``groups``;
        operators' own components are left alone."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            wanted_groups = {g.id for g in groups}
            wanted = {c.id for g in groups for c in g.components}
            for pos, g in enumerate(groups):
                group = await session.get(StatusGroup, g.id)
                if group is None:
                    group = StatusGroup(id=g.id, createdAt=now)
                    session.add(group)
                group.name, group.position, group.builtin, group.updatedAt = g.name, pos, True, now
            await session.flush()
            for g in groups:
                for pos, c in enumerate(g.components):
                    comp = await session.get(StatusComponent, c.id)
                    if comp is None:
                        comp = StatusComponent(
                            id=c.id, createdAt=now, status="operational", statusSince=now
                        )
                        comp.failures = 0
                        session.add(comp)
                    comp.name, comp.description, comp.groupId = c.name, c.description, g.id
                    comp.position, comp.builtin, comp.kind = pos, True, c.kind
                    comp.target, comp.expect = c.target, json.dumps(c.expect)
                    comp.intervalSeconds, comp.timeoutSeconds = c.interval, c.timeout
                    comp.degradedMs, comp.failureThreshold = c.degraded_ms, c.failure_threshold
                    comp.tlsWarnDays = c.tls_warn_days
                    comp.autoIncidentMinutes = c.auto_incident_minutes
                    comp.onlyShowIfDegraded = c.only_show_if_degraded
                    comp.updatedAt = now
            gone = await session.scalars(
                select(StatusComponent).where(
                    StatusComponent.builtin.is_(True), StatusComponent.id.not_in(wanted or {""})
                )
            )
            for comp in gone.all():
                await session.delete(comp)
            old_groups = await session.scalars(
                select(StatusGroup).where(
                    StatusGroup.builtin.is_(True), StatusGroup.id.not_in(wanted_groups or {""})
                )
            )
            for group in old_groups.all():
                await session.delete(group)
        self._changed()

    # -- operators' components, groups and webhooks -------------------------------------

    async def add_group(self, group_id: str, name: str) -> StatusGroup:
        now = self.clock.now()
        async with self.db.transaction() as session:
            if await session.get(StatusGroup, group_id) is not None:
                raise Conflict(f"group {group_id!r} exists")
            count = await session.scalar(select(func.count()).select_from(StatusGroup))
            group = StatusGroup(
                id=group_id, name=name, position=int(count or 0), builtin=False, createdAt=now
            )
            group.updatedAt = now
            session.add(group)
        self._changed()
        return group

    async def delete_group(self, group_id: str) -> None:
        await self._delete(
            StatusGroup, group_id, "group", "a configured group is changed in the configuration"
        )

    async def _delete(self, model: Any, ident: str, what: str, builtin: str | None = None) -> None:
        """Delete one row by id: NotFound if missing; BadRequest(``builtin``) for a
        configured one."""
        async with self.db.transaction() as session:
            row = await session.get(model, ident)
            if row is None:
                raise NotFound(f"{what} not found")
            if builtin is not None and row.builtin:
                raise BadRequest(builtin)
            await session.delete(row)
        self._changed()

    async def add_component(self, values: dict[str, Any]) -> StatusComponent:
        now = self.clock.now()
        async with self.db.transaction() as session:
            if await session.get(StatusComponent, values["id"]) is not None:
                raise Conflict(f"component {values['id']!r} exists")
            if values.get("groupId") and await session.get(StatusGroup, values["groupId"]) is None:
                raise BadRequest(f"group {values['groupId']!r} does not exist")
            comp = StatusComponent(
                builtin=False,
                status="operational",
                statusSince=now,
                failures=0,
                createdAt=now,
                updatedAt=now,
            )
            _assign(comp, values)
            session.add(comp)
        self._changed()
        return comp

    async def change_component(self, component_id: str, values: dict[str, Any]) -> StatusComponent:
        """Change an operator's component; of a configured one only the status set by hand
        (the rest comes from the configuration at every start)."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            comp = await session.get(StatusComponent, component_id)
            if comp is None:
                raise NotFound("component not found")
            if comp.builtin and set(values) - {"manualStatus"}:
                raise BadRequest(
                    "a configured component is changed in the configuration; "
                    "only manualStatus can be set here"
                )
            if values.get("groupId") and await session.get(StatusGroup, values["groupId"]) is None:
                raise BadRequest(f"group {values['groupId']!r} does not exist")
            _assign(comp, values)
            await self._refresh(session, comp, now)
        self._changed()
        return comp

    async def delete_component(self, component_id: str) -> None:
        await self._delete(
            StatusComponent,
            component_id,
            "component",
            "a configured component is removed from the configuration",
        )

    async def results(self, component_id: str, limit: int) -> list[CheckResult]:
        await self.component(component_id)
        async with self.db.session() as session:
            rows = await session.scalars(
                select(CheckResult)
                .where(CheckResult.componentId == component_id)
                .order_by(CheckResult.at.desc(), CheckResult.id.desc())
                .limit(limit)
            )
            return list(rows.all())

    async def add_webhook(self, url: str, components: Sequence[str] | None) -> Webhook:
        now = self.clock.now()
        async with self.db.transaction() as session:
            if components is not None:
                await self._known(session, list(components))
            hook = Webhook(
                id=new_id(),
                url=url,
                secret=secrets.token_urlsafe(32),
                components=None if components is None else json.dumps(sorted(components)),
                createdAt=now,
            )
            session.add(hook)
        return hook

    async def webhooks(self) -> list[Webhook]:
        async with self.db.session() as session:
            return list((await session.scalars(select(Webhook).order_by(Webhook.createdAt))).all())

    async def delete_webhook(self, webhook_id: str) -> None:
        await self._delete(Webhook, webhook_id, "webhook")

    async def deliveries(self, webhook_id: str, limit: int = 50) -> list[WebhookDelivery]:
        async with self.db.session() as session:
            if await session.get(Webhook, webhook_id) is None:
                raise NotFound("webhook not found")
            rows = await session.scalars(
                select(WebhookDelivery)
                .where(WebhookDelivery.webhookId == webhook_id)
                .order_by(WebhookDelivery.createdAt.desc())
                .limit(limit)
            )
            return list(rows.all())

    async def delete_subscriber(self, subscriber_id: str) -> None:
        await self._delete(Subscriber, subscriber_id, "subscriber")

    async def save_template(
        self,
        template_id: str,
        *,
        name: str,
        body: str,
        status: str,
        impact: str,
        affected: Sequence[Affected],
    ) -> IncidentTemplate:
        async with self.db.transaction() as session:
            await self._known(session, [a.component for a in affected])
            template = await session.get(IncidentTemplate, template_id)
            if template is None:
                template = IncidentTemplate(id=template_id)
                session.add(template)
            template.name, template.body, template.status = name, body, status
            template.impact, template.updatedAt = impact, self.clock.now()
            template.components = json.dumps(
                [{"id": a.component, "status": a.status} for a in affected]
            )
        return template

    async def templates(self) -> list[IncidentTemplate]:
        async with self.db.session() as session:
            rows = await session.scalars(select(IncidentTemplate).order_by(IncidentTemplate.id))
            return list(rows.all())

    async def _get(self, model: Any, ident: str, what: str) -> Any:
        async with self.db.session() as session:
            row = await session.get(model, ident)
        if row is None:
            raise NotFound(f"{what} not found")
        return row

    async def template(self, template_id: str) -> IncidentTemplate:
        template: IncidentTemplate = await self._get(IncidentTemplate, template_id, "template")
        return template

    async def delete_template(self, template_id: str) -> None:
        await self._delete(IncidentTemplate, template_id, "template")

    # -- reading -----------------------------------------------------------------------

    async def components(self) -> list[StatusComponent]:
        async with self.db.session() as session:
            rows = await session.scalars(
                select(StatusComponent).order_by(StatusComponent.position, StatusComponent.id)
            )
            return list(rows.all())

    async def groups(self) -> list[StatusGroup]:
        async with self.db.session() as session:
            rows = await session.scalars(
                select(StatusGroup).order_by(StatusGroup.position, StatusGroup.id)
            )
            return list(rows.all())

    async def component(self, component_id: str) -> StatusComponent:
        comp: StatusComponent = await self._get(StatusComponent, component_id, "component")
        return comp

    @staticmethod
    def spec(comp: StatusComponent) -> Spec:
        return Spec(
            kind=comp.kind,
            target=comp.target or "",
            timeout=comp.timeoutSeconds,
            expect=json.loads(comp.expect or "{}"),
            degraded_ms=comp.degradedMs,
            tls_warn_days=comp.tlsWarnDays,
        )

    async def due(self) -> list[StatusComponent]:
        """Components whose check is due now."""
        now = self.clock.now()
        out = []
        for comp in await self.components():
            if comp.kind == "manual":
                continue
            last = comp.lastCheckAt
            if last is None or (now - last).total_seconds() >= comp.intervalSeconds:
                out.append(comp)
        return out

    # -- check results -----------------------------------------------------------------

    async def record(self, component_id: str, outcome: Outcome) -> str | None:
        """Store one check result and what follows from it (status, automatic incident).
        Returns the component's status, or None if it no longer exists."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            comp = await session.get(StatusComponent, component_id)
            if comp is None:
                return None
            session.add(
                CheckResult(
                    componentId=comp.id,
                    at=now,
                    ok=outcome.ok,
                    degraded=outcome.degraded,
                    responseMs=outcome.ms,
                    # A check is late by up to a tick and its own duration.
                    covers=float(comp.intervalSeconds) + comp.timeoutSeconds + self.slack_seconds,
                    detail=outcome.detail[:1000],
                )
            )
            comp.lastCheckAt = now
            if outcome.ok:
                comp.failures, comp.downSince = 0, None
            else:
                comp.failures = (comp.failures or 0) + 1
                if comp.downSince is None:
                    comp.downSince = now
            before = comp.status
            await self._auto_incident(session, comp, now)
            await self._refresh(session, comp, now)
            status = comp.status
        if status != before or session.info.get("incident_changed"):
            self._changed()  # what the public reads changed (uptime figures may lag 5 s)
        else:
            self.on_commit()
        return status

    def _checked_status(self, comp: StatusComponent, last: CheckResult | None) -> str:
        if comp.failures >= max(1, comp.failureThreshold):
            return "major_outage"
        if last is not None and last.ok and last.degraded:
            return "degraded_performance"
        return "operational"

    async def _refresh(
        self, session: AsyncSession, comp: StatusComponent, now: dt.datetime
    ) -> None:
        """Recompute what the public sees of ``comp``."""
        await session.flush()
        if comp.manualStatus:
            status = comp.manualStatus
        elif await self._in_maintenance(session, comp.id):
            status = "under_maintenance"
        else:
            last = await session.scalar(
                select(CheckResult)
                .where(CheckResult.componentId == comp.id)
                .order_by(CheckResult.at.desc(), CheckResult.id.desc())
                .limit(1)
            )
            from_incidents = await session.scalars(
                select(IncidentComponent.status)
                .join(Incident, Incident.id == IncidentComponent.incidentId)
                .where(
                    IncidentComponent.componentId == comp.id,
                    Incident.kind == "incident",
                    Incident.status.in_(OPEN_INCIDENT),
                )
            )
            checked = "operational" if comp.kind == "manual" else self._checked_status(comp, last)
            given = list(from_incidents.all())
            status = _worst([checked, *given])
            if status == "operational" and "under_maintenance" in given:
                status = "under_maintenance"
        if status != comp.status:
            log.info(
                "component status",
                extra={"component": comp.id, "from": comp.status, "to": status},
            )
            await self._publish(
                session,
                "status.component.changed.v1",
                {
                    "component": {"id": comp.id, "name": comp.name},
                    "old_status": comp.status,
                    "new_status": status,
                },
            )
            comp.status, comp.statusSince = status, now
        comp.updatedAt = now

    async def _in_maintenance(self, session: AsyncSession, component_id: str) -> bool:
        found = await session.scalar(
            select(func.count())
            .select_from(IncidentComponent)
            .join(Incident, Incident.id == IncidentComponent.incidentId)
            .where(
                IncidentComponent.componentId == component_id,
                Incident.kind == "maintenance",
                Incident.status.in_(("in_progress", "verifying")),
            )
        )
        return bool(found)

    async def _auto_incident(
        self, session: AsyncSession, comp: StatusComponent, now: dt.datetime
    ) -> None:
        if comp.autoIncidentMinutes is None or await self._in_maintenance(session, comp.id):
            return  # failures during maintenance are expected
        open_auto = await session.scalar(
            select(Incident).where(
                Incident.autoFor == comp.id,
                Incident.kind == "incident",
                Incident.status.in_(OPEN_INCIDENT),
            )
        )
        down = comp.failures >= max(1, comp.failureThreshold) and comp.downSince is not None
        if down and open_auto is None and comp.downSince is not None:
            minutes = (now - comp.downSince).total_seconds() / 60
            # One per run of failures: one an administrator resolved stays resolved.
            earlier = await session.scalar(
                select(func.count())
                .select_from(Incident)
                .where(Incident.autoFor == comp.id, Incident.createdAt >= comp.downSince)
            )
            if minutes >= comp.autoIncidentMinutes and not comp.manualStatus and not earlier:
                await self._open(
                    session,
                    kind="incident",
                    name=f"{comp.name} is unavailable",
                    status="investigating",
                    impact="major",
                    body=f"Our checks of {comp.name} have failed since "
                    f"{comp.downSince:%Y-%m-%d %H:%M} UTC. We are looking into it.",
                    affected=[Affected(comp.id, "major_outage")],
                    actor="prober",
                    notify=True,
                    now=now,
                    auto_for=comp.id,
                )
        elif comp.failures == 0 and open_auto is not None:
            await self._update(
                session,
                open_auto,
                status="resolved",
                body=f"{comp.name} has recovered: our checks pass again.",
                affected=None,
                impact=None,
                actor="prober",
                notify=True,
                now=now,
            )

    # -- incidents and maintenance -----------------------------------------------------

    async def open_incident(
        self,
        *,
        name: str,
        status: str,
        impact: str,
        body: str,
        affected: Sequence[Affected],
        actor: str,
        notify: bool = True,
    ) -> Incident:
        now = self.clock.now()
        async with self.db.transaction() as session:
            await self._known(session, [a.component for a in affected])
            incident = await self._open(
                session,
                kind="incident",
                name=name,
                status=status,
                impact=impact,
                body=body,
                affected=affected,
                actor=actor,
                notify=notify,
                now=now,
            )
        self._changed()
        return incident

    async def schedule_maintenance(
        self,
        *,
        name: str,
        body: str,
        scheduled_for: dt.datetime,
        scheduled_until: dt.datetime,
        components: Sequence[str],
        actor: str,
        auto_transition: bool = True,
        notify: bool = True,
    ) -> Incident:
        if scheduled_until <= scheduled_for:
            raise BadRequest("scheduledUntil must be after scheduledFor")
        now = self.clock.now()
        async with self.db.transaction() as session:
            await self._known(session, components)
            incident = await self._open(
                session,
                kind="maintenance",
                name=name,
                status="scheduled",
                impact="maintenance",
                body=body,
                affected=[Affected(c, "under_maintenance") for c in components],
                actor=actor,
                notify=notify,
                now=now,
                window=(scheduled_for, scheduled_until),
                auto_transition=auto_transition,
            )
        await self.tick_maintenance()  # a window that has already begun starts now
        self._changed()
        return incident

    async def update_incident(
        self,
        incident_id: str,
        *,
        status: str | None,
        body: str,
        affected: Sequence[Affected] | None,
        impact: str | None,
        actor: str,
        notify: bool = True,
    ) -> Incident:
        now = self.clock.now()
        async with self.db.transaction() as session:
            incident = await session.get(Incident, incident_id)
            if incident is None:
                raise NotFound("incident not found")
            if status is not None:
                allowed = (*OPEN_MAINTENANCE, "completed", "cancelled")
                if incident.kind == "incident":
                    allowed = (*OPEN_INCIDENT, "resolved", "postmortem")
                if status not in allowed:
                    raise BadRequest(f"status must be one of {', '.join(allowed)}")
            if affected is not None:
                await self._known(session, [a.component for a in affected])
            await self._update(
                session,
                incident,
                status=status,
                body=body,
                affected=affected,
                impact=impact,
                actor=actor,
                notify=notify,
                now=now,
            )
        self._changed()
        return incident

    async def delete_incident(self, incident_id: str) -> None:
        now = self.clock.now()
        async with self.db.transaction() as session:
            incident = await session.get(Incident, incident_id)
            if incident is None:
                raise NotFound("incident not found")
            touched = await self._components_of(session, incident.id)
            await session.delete(incident)
            await session.flush()
            for comp_id in touched:
                comp = await session.get(StatusComponent, comp_id)
                if comp is not None:
                    await self._refresh(session, comp, now)
        self._changed()

    async def tick_maintenance(self) -> int:
        """Start maintenance whose window began and complete that whose window ended."""
        now = self.clock.now()
        moved = 0
        async with self.db.transaction() as session:
            rows = await session.scalars(
                select(Incident).where(
                    Incident.kind == "maintenance",
                    Incident.autoTransition.is_(True),
                    or_(
                        (Incident.status == "scheduled") & (Incident.scheduledFor <= now),
                        Incident.status.in_(("in_progress", "verifying"))
                        & (Incident.scheduledUntil <= now),
                    ),
                )
            )
            for m in rows.all():
                assert m.scheduledUntil is not None
                if m.status == "scheduled" and m.scheduledUntil > now:
                    status, body = "in_progress", "Scheduled maintenance is in progress."
                else:
                    status, body = "completed", "Scheduled maintenance has been completed."
                await self._update(
                    session,
                    m,
                    status=status,
                    body=body,
                    affected=None,
                    impact=None,
                    actor="schedule",
                    notify=True,
                    now=now,
                )
                moved += 1
        if moved:
            self._changed()
        return moved

    async def _known(self, session: AsyncSession, components: Sequence[str]) -> None:
        if len(set(components)) != len(components):
            raise BadRequest("components must not repeat")
        for comp_id in components:
            if await session.get(StatusComponent, comp_id) is None:
                raise BadRequest(f"component {comp_id!r} does not exist")

    async def _components_of(self, session: AsyncSession, incident_id: str) -> list[str]:
        rows = await session.scalars(
            select(IncidentComponent.componentId).where(IncidentComponent.incidentId == incident_id)
        )
        return list(rows.all())

    async def _open(
        self,
        session: AsyncSession,
        *,
        kind: str,
        name: str,
        status: str,
        impact: str,
        body: str,
        affected: Sequence[Affected],
        actor: str,
        notify: bool,
        now: dt.datetime,
        auto_for: str | None = None,
        window: tuple[dt.datetime, dt.datetime] | None = None,
        auto_transition: bool = True,
    ) -> Incident:
        incident = Incident(
            id=new_id(),
            kind=kind,
            name=name,
            status=status,
            impact=impact,
            autoFor=auto_for,
            scheduledFor=window[0] if window else None,
            scheduledUntil=window[1] if window else None,
            autoTransition=auto_transition,
            startedAt=now,
            createdAt=now,
            updatedAt=now,
        )
        session.add(incident)
        await session.flush()
        for a in affected:
            session.add(
                IncidentComponent(incidentId=incident.id, componentId=a.component, status=a.status)
            )
        await self._add_update(session, incident, body, actor, notify, now, before={})
        return incident

    async def _update(
        self,
        session: AsyncSession,
        incident: Incident,
        *,
        status: str | None,
        body: str,
        affected: Sequence[Affected] | None,
        impact: str | None,
        actor: str,
        notify: bool,
        now: dt.datetime,
    ) -> None:
        before = await self._statuses(session, await self._components_of(session, incident.id))
        if affected is not None:
            await session.execute(
                delete(IncidentComponent).where(IncidentComponent.incidentId == incident.id)
            )
            for a in affected:
                session.add(
                    IncidentComponent(
                        incidentId=incident.id, componentId=a.component, status=a.status
                    )
                )
        if impact is not None:
            incident.impact = impact
        if status is not None and status != incident.status:
            incident.status = status
            if status == "monitoring":
                incident.monitoringAt = now
            if status in ("in_progress", "verifying") and incident.beganAt is None:
                incident.beganAt = now  # maintenance: when it really began
            if status in ("resolved", "completed", "cancelled", "postmortem"):
                incident.resolvedAt = incident.resolvedAt or now
            else:
                incident.resolvedAt = None  # open again
        incident.updatedAt = now
        await self._add_update(session, incident, body, actor, notify, now, before=before)

    async def _statuses(self, session: AsyncSession, ids: Iterable[str]) -> dict[str, str]:
        out = {}
        for comp_id in ids:
            comp = await session.get(StatusComponent, comp_id)
            if comp is not None:
                out[comp_id] = comp.status
        return out

    async def _add_update(
        self,
        session: AsyncSession,
        incident: Incident,
        body: str,
        actor: str,
        notify: bool,
        now: dt.datetime,
        *,
        before: dict[str, str],
    ) -> None:
        await session.flush()
        ids = await self._components_of(session, incident.id)
        touched = sorted(set(ids) | set(before))
        affected = []
        for comp_id in touched:
            comp = await session.get(StatusComponent, comp_id)
            if comp is None:
                continue
            old = before.get(comp_id, comp.status)
            await self._refresh(session, comp, now)
            affected.append(
                {"code": comp.id, "name": comp.name, "old_status": old, "new_status": comp.status}
            )
        count = await session.scalar(
            select(func.count())
            .select_from(IncidentUpdate)
            .where(IncidentUpdate.incidentId == incident.id)
        )
        update = IncidentUpdate(
            id=new_id(),
            incidentId=incident.id,
            position=int(count or 0),
            status=incident.status,
            body=body,
            affected=json.dumps(affected),
            actor=actor,
            createdAt=now,
        )
        session.add(update)
        await session.flush()
        session.info["incident_changed"] = True
        if notify:
            await self._notify(session, incident, update, ids)

    # -- notifications -----------------------------------------------------------------

    async def _publish(self, session: AsyncSession, type_: str, data: dict[str, Any]) -> None:
        await publish(session, outbox, NOTIFY_STREAM, BusEvent(type=type_, data=data))

    def incident_url(self, incident: Incident) -> str:
        return f"{self.public_url}/statuspage/incidents/{incident.id}"

    async def _notify(
        self,
        session: AsyncSession,
        incident: Incident,
        update: IncidentUpdate,
        components: Sequence[str],
    ) -> None:
        wanted = set(components)
        message = {
            "kind": incident.kind,
            "incident": {
                "id": incident.id,
                "name": incident.name,
                "status": incident.status,
                "impact": incident.impact,
                "url": self.incident_url(incident),
                "scheduledFor": _iso(incident.scheduledFor),
                "scheduledUntil": _iso(incident.scheduledUntil),
            },
            "update": {
                "id": update.id,
                "status": update.status,
                "body": update.body,
                "createdAt": _iso(update.createdAt),
                "components": json.loads(update.affected),
            },
        }
        subscribers = await session.scalars(
            select(Subscriber).where(Subscriber.confirmedAt.is_not(None))
        )
        for sub in subscribers.all():
            chosen = None if sub.components is None else set(json.loads(sub.components))
            if chosen is not None and not (chosen & wanted):
                continue
            await self._publish(
                session,
                "status.notification.v1",
                {
                    **message,
                    "subscriber": sub.id,
                    "email": sub.email,
                    "unsubscribeUrl": f"{self.public_url}/statuspage/unsubscribe/"
                    f"{sub.unsubscribeToken}",
                },
            )
        hooks = await session.scalars(select(Webhook))
        for hook in hooks.all():
            chosen = None if hook.components is None else set(json.loads(hook.components))
            if chosen is not None and not (chosen & wanted):
                continue
            session.add(
                WebhookDelivery(
                    id=new_id(),
                    webhookId=hook.id,
                    payload=json.dumps({"type": "status.notification.v1", **message}),
                    state="pending",
                    attempts=0,
                    nextAt=update.createdAt,
                    createdAt=update.createdAt,
                )
            )

    # -- subscribers -------------------------------------------------------------------

    async def subscribe(self, email: str, components: Sequence[str] | None) -> None:
        """Ask ``email`` to confirm (double opt-in). The same answer whether or not the
        address is known, so the form tells nobody who subscribed."""
        try:
            address = validate_email(email, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise BadRequest(f"email: {exc}") from None
        now = self.clock.now()
        async with self.db.transaction() as session:
            if components is not None:
                if not components:
                    raise BadRequest("components: choose at least one, or none at all for all")
                await self._known(session, list(components))
            sub = await session.scalar(
                select(Subscriber).where(Subscriber.emailKey == address.lower())
            )
            if sub is None:
                # Two requests for a new address at once: one inserts, the other finds it.
                await session.execute(
                    _insert_ignore(session)(Subscriber)
                    .values(
                        id=new_id(),
                        email=address,
                        email_key=address.lower(),
                        unsubscribe_token=secrets.token_urlsafe(24),
                        created_at=now,
                    )
                    .on_conflict_do_nothing()
                )
                sub = await session.scalar(
                    select(Subscriber).where(Subscriber.emailKey == address.lower())
                )
                assert sub is not None
            recent = sub.confirmSentAt is not None and now - sub.confirmSentAt < CONFIRM_COOLDOWN
            if recent:
                # The form must not become a way to flood an address with confirmations.
                log.info("confirmation not sent again yet", extra={"subscriber": sub.id})
                return
            sub.confirmSentAt = now
            # A confirmed subscriber changes their choice through a new confirmation too.
            token = secrets.token_urlsafe(24)
            sub.confirmHash = digest(token)
            choice = sorted(components) if components is not None else None
            sub.pending = json.dumps({"components": choice})
            await session.flush()
            await self._publish(
                session,
                "status.subscriber.confirm.v1",
                {
                    "subscriber": sub.id,
                    "email": sub.email,
                    "components": choice,
                    "confirmUrl": f"{self.public_url}/statuspage/confirm/{token}",
                },
            )
        self.on_commit()

    async def confirm(self, token: str) -> Subscriber:
        now = self.clock.now()
        async with self.db.transaction() as session:
            sub = await session.scalar(
                select(Subscriber).where(Subscriber.confirmHash == digest(token))
            )
            if sub is None:
                raise NotFound("this confirmation link is not valid (used, or replaced)")
            sub.confirmedAt = sub.confirmedAt or now
            choice = json.loads(sub.pending or "{}").get("components")
            sub.components = None if choice is None else json.dumps(choice)
            sub.confirmHash, sub.pending = None, None
        return sub

    async def unsubscribe(self, token: str) -> bool:
        async with self.db.transaction() as session:
            sub = await session.scalar(
                select(Subscriber).where(Subscriber.unsubscribeToken == token)
            )
            if sub is None:
                return False
            await session.delete(sub)
        return True

    async def subscribers(self) -> list[Subscriber]:
        async with self.db.session() as session:
            rows = await session.scalars(select(Subscriber).order_by(Subscriber.createdAt))
            return list(rows.all())

    # -- uptime ------------------------------------------------------------------------

    async def _samples(
        self, session: AsyncSession, comp_id: str, start: dt.datetime, end: dt.datetime
    ) -> list[uptime.Sample]:
        # Plain rows, not ORM objects: a day is 2,880 results at a 30 s interval.
        cols = (CheckResult.at, CheckResult.ok, CheckResult.degraded, CheckResult.covers)
        before = (
            await session.execute(
                select(*cols)
                .where(CheckResult.componentId == comp_id, CheckResult.at < start)
                .order_by(CheckResult.at.desc())
                .limit(1)
            )
        ).first()
        rows = (
            await session.execute(
                select(*cols)
                .where(
                    CheckResult.componentId == comp_id,
                    CheckResult.at >= start,
                    CheckResult.at < end,
                )
                .order_by(CheckResult.at, CheckResult.id)
            )
        ).all()
        found = ([before] if before is not None else []) + list(rows)
        return [
            uptime.Sample(at, bool(ok), bool(degraded), covers)
            for at, ok, degraded, covers in found
        ]

    async def _maintenance_windows(
        self, session: AsyncSession, comp_id: str, now: dt.datetime
    ) -> list[uptime.Interval]:
        rows = await session.execute(
            select(Incident.beganAt, Incident.resolvedAt)
            .join(IncidentComponent, IncidentComponent.incidentId == Incident.id)
            .where(
                IncidentComponent.componentId == comp_id,
                Incident.kind == "maintenance",
                Incident.beganAt.is_not(None),
            )
        )
        return [(start, end or now) for start, end in rows.all() if start is not None]

    async def tally(self, comp_id: str, start: dt.datetime, end: dt.datetime) -> uptime.Tally:
        async with self.db.session() as session:
            samples = await self._samples(session, comp_id, start, end)
            windows = await self._maintenance_windows(session, comp_id, end)
        return uptime.tally(samples, start, end, windows)

    async def days(self, comp_id: str, count: int = 90) -> list[tuple[dt.date, uptime.Tally]]:
        """One tally per UTC day, oldest first, today (so far) last. Past days are computed
        once and kept."""
        now = self.clock.now()
        today = now.date()
        first = today - dt.timedelta(days=count - 1)
        out: list[tuple[dt.date, uptime.Tally]] = []
        async with self.db.session() as session:
            kept = {
                d.day: d
                for d in (
                    await session.scalars(
                        select(UptimeDay).where(
                            UptimeDay.componentId == comp_id, UptimeDay.day >= first.isoformat()
                        )
                    )
                ).all()
            }
            windows = await self._maintenance_windows(session, comp_id, now)
            fresh: list[UptimeDay] = []
            comp = await session.get(StatusComponent, comp_id)
            created = comp.createdAt.date() if comp is not None else first
            for i in range(count):
                day = first + dt.timedelta(days=i)
                row = kept.get(day.isoformat())
                if row is not None:
                    out.append((day, uptime.Tally(*_tally_of(row))))
                    continue
                start, end = uptime.day_bounds(day)
                if day < created:
                    out.append((day, uptime.Tally(nodata=DAY.total_seconds())))
                    continue
                end = min(end, now)
                samples = await self._samples(session, comp_id, start, end)
                t = uptime.tally(samples, start, end, windows)
                out.append((day, t))
                if day < today:
                    fresh.append(
                        UptimeDay(
                            componentId=comp_id,
                            day=day.isoformat(),
                            up=t.up,
                            down=t.down,
                            degraded=t.degraded,
                            maintenance=t.maintenance,
                            nodata=t.nodata,
                        )
                    )
        if fresh:
            try:
                async with self.db.transaction() as session:
                    for row in fresh:
                        await session.merge(row)
            except Exception:  # another replica kept the same day first: theirs is equal
                log.debug("uptime day kept elsewhere", exc_info=True)
        return out

    async def uptimes(
        self, comp_id: str, day_tallies: list[tuple[dt.date, uptime.Tally]] | None = None
    ) -> dict[str, float | None]:
        """Uptime over the last 24 hours, 7, 30 and 90 days (None where no data); pass
        ``days(comp_id, 90)`` if you have it."""
        now = self.clock.now()
        if day_tallies is None:
            day_tallies = await self.days(comp_id, 90)
        out: dict[str, float | None] = {
            "24h": (await self.tally(comp_id, now - DAY, now)).uptime,
        }
        for label, n in (("7d", 7), ("30d", 30), ("90d", 90)):
            total = uptime.Tally()
            for _day, t in day_tallies[-n:]:
                total = total + t
            out[label] = total.uptime
        return out

    async def response_times(
        self, comp_id: str, hours: int = 24, buckets: int = 48
    ) -> list[tuple[dt.datetime, float | None]]:
        """Mean response time (ms) of successful checks per time bucket."""
        now = self.clock.now()
        start = now - dt.timedelta(hours=hours)
        width = (now - start) / buckets
        sums = [0.0] * buckets
        counts = [0] * buckets
        async with self.db.session() as session:
            rows = await session.execute(
                select(CheckResult.at, CheckResult.responseMs).where(
                    CheckResult.componentId == comp_id,
                    CheckResult.at >= start,
                    CheckResult.ok.is_(True),
                    CheckResult.responseMs.is_not(None),
                )
            )
            for at, ms in rows.all():
                i = min(buckets - 1, int((at - start) / width))
                sums[i] += ms or 0.0
                counts[i] += 1
        return [
            (start + width * i, (sums[i] / counts[i]) if counts[i] else None)
            for i in range(buckets)
        ]

    async def prune(self, keep_days: int) -> int:
        """Drop check results older than ``keep_days`` (their days are kept as tallies)."""
        cutoff = self.clock.now() - dt.timedelta(days=keep_days)
        async with self.db.transaction() as session:
            result = await session.execute(delete(CheckResult).where(CheckResult.at < cutoff))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    # -- incidents, as the public reads them -------------------------------------------

    async def incidents(
        self,
        *,
        kind: str | None = None,
        open_only: bool = False,
        limit: int = 50,
        offset: int = 0,
    ) -> list[tuple[Incident, list[IncidentUpdate], list[IncidentComponent]]]:
        async with self.db.session() as session:
            stmt = (
                select(Incident)
                .order_by(Incident.createdAt.desc(), Incident.id)
                .limit(limit)
                .offset(offset)
            )
            if kind:
                stmt = stmt.where(Incident.kind == kind)
            if open_only:
                stmt = stmt.where(Incident.status.in_(OPEN_INCIDENT + OPEN_MAINTENANCE))
            found = list((await session.scalars(stmt)).all())
            return [await self._bundle(session, inc) for inc in found]

    async def _bundle(
        self, session: AsyncSession, inc: Incident
    ) -> tuple[Incident, list[IncidentUpdate], list[IncidentComponent]]:
        updates = await session.scalars(
            select(IncidentUpdate)
            .where(IncidentUpdate.incidentId == inc.id)
            .order_by(IncidentUpdate.position.desc())
        )
        comps = await session.scalars(
            select(IncidentComponent)
            .where(IncidentComponent.incidentId == inc.id)
            .order_by(IncidentComponent.componentId)
        )
        return inc, list(updates.all()), list(comps.all())

    async def incident(
        self, incident_id: str
    ) -> tuple[Incident, list[IncidentUpdate], list[IncidentComponent]]:
        async with self.db.session() as session:
            inc = await session.get(Incident, incident_id)
            if inc is None:
                raise NotFound("incident not found")
            return await self._bundle(session, inc)

    # -- administrators ----------------------------------------------------------------

    async def on_organizer_change(self, event: BusEvent) -> None:
        if event.type != "organizer.user.changed.v1":
            return
        async with self.db.transaction() as session:
            if not await first_time(session, inbox, event.id):
                return
            user = event.data.get("user")
            found = await session.get(Admin, int(event.data["id"]))
            if user is None or int(user.get("role", 99)) not in ADMIN_ROLES:
                if found is not None:
                    await session.delete(found)
            else:
                await session.merge(Admin(id=int(event.data["id"]), role=int(user["role"])))

    async def is_admin(self, user_id: int) -> bool:
        async with self.db.session() as session:
            return await session.get(Admin, user_id) is not None


def _insert_ignore(session: AsyncSession) -> Any:
    """The dialect's INSERT that can skip a conflicting row."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert
    return sqlite.insert


def _assign(comp: StatusComponent, values: dict[str, Any]) -> None:
    for name, value in values.items():
        if name == "expect":
            comp.expect = json.dumps(value or {})
        else:
            setattr(comp, name, value)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _tally_of(row: UptimeDay) -> tuple[float, float, float, float, float]:
    return row.up, row.degraded, row.down, row.maintenance, row.nodata
