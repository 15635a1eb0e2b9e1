"""The mailer: bus events schedule emails (jobs), a worker sends them, staff steer them.

Every email is a ``scheduled_emails`` row moving through a state machine, and every move is
an ``email_logs`` row saying who or what made it:

    scheduled ──claim──> locked ──sent──> succeeded
        ^                  │ └──temporary failure, attempts left──> scheduled (backoff)
        │                  └────permanent failure / attempts used──> failed
        └─ reschedule / resend (staff)          scheduled ──cancel / expiry──> cancelled

A claim is one UPDATE ... RETURNING over due rows (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL; SQLite runs one writer at a time), so two workers, or two overlapping ``--once``
runs, never hold one email at the same time. A claim is a lease: a worker that dies holding
emails leaves them ``locked`` until ``locked_until``, then any worker claims them again.
Every attempt of an email carries the same Message-ID (its idempotency key).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import logging
import random
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from aidpost.core.bus import Event as BusEvent
from aidpost.core.clock import Clock
from aidpost.core.db import Database
from aidpost.core.directory import Directory, DirectoryUnavailable, Transcripts
from aidpost.core.errors import BadRequest, NotFound
from aidpost.core.outbox import first_time
from aidpost.core.settings import MailerSettings
from aidpost.mailer import templates as tpl
from aidpost.mailer.jobs import Job, holds, key
from aidpost.mailer.models import (
    OPEN_STATES,
    EmailLog,
    Person,
    ScheduledEmail,
    Snapshot,
    Template,
    inbox,
)
from aidpost.mailer.transport import PermanentFailure, TemporaryFailure, Transport

log = logging.getLogger("aidpost.mailer")
ADMIN_ROLES = (0, 1)
SUPERADMIN_ROLE = 0


class Undeliverable(Exception):
    """This email can never be sent as it is (no recipient, a template that fails)."""


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Filters:
    state: str | None = None
    job: str | None = None
    recipient: str | None = None
    limit: int = 50
    offset: int = 0


class MailerService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        jobs: Mapping[str, Job],
        transport: Transport,
        directory: Directory,
        settings: MailerSettings,
        *,
        worker_id: str | None = None,
        rng: Callable[[], float] = random.random,
        transcripts: Transcripts | None = None,
    ) -> None:
        self.db, self.clock, self.jobs = db, clock, jobs
        self.transport, self.directory, self.settings = transport, directory, settings
        self.worker_id = worker_id or uuid.uuid4().hex[:12]
        self.rng = rng
        self.transcripts = transcripts
        self.sender = _address(settings.from_address)
        self._by_event: dict[str, list[Job]] = {}
        self._cancelled_by: dict[str, list[Job]] = {}
        self._scheduled = [job for job in jobs.values() if job.schedule is not None]
        for job in jobs.values():
            if job.schedule is None:
                self._by_event.setdefault(job.event, []).append(job)
            for canceller in job.cancellers:
                self._cancelled_by.setdefault(canceller.event, []).append(job)

    def streams(self) -> set[str]:
        """Event types the jobs listen to (the component subscribes to their streams)."""
        return set(self._by_event) | set(self._cancelled_by)

    # -- scheduling --------------------------------------------------------------------------

    async def on_event(self, event: BusEvent) -> None:
        """Keep the read models, cancel what this event cancels, schedule what it triggers;
        one transaction, once per event id."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            if not await first_time(session, inbox, event.id):
                return
            before = await self._read_models(session, event)
            root = {
                "id": event.id,
                "type": event.type,
                "time": event.time,
                "data": event.data,
                "before": before,
            }
            for job in self._cancelled_by.get(event.type, []):
                for canceller in job.cancellers:
                    if canceller.event == event.type and holds(canceller.conditions, root):
                        await self._cancel_source(
                            session, job, key(canceller.source, root), event, now
                        )
            for job in self._by_event.get(event.type, []):
                if holds(job.conditions, root):
                    await self._schedule(session, job, root, event, now)

    async def _read_models(self, session: AsyncSession, event: BusEvent) -> Any:
        """People, agencies and events of the organizer; returns the entity as it was."""
        kind = {
            "organizer.user.changed.v1": "user",
            "organizer.agency.changed.v1": "agency",
            "organizer.event.changed.v1": "event",
        }.get(event.type)
        if kind is None:
            return None
        entity_id = int(event.data["id"])
        value = event.data.get(kind)
        if kind == "user":
            person = await session.get(Person, entity_id)
            before = None if person is None else _person(person)
            if value is None:
                if person is not None:
                    await session.delete(person)
            else:
                await session.merge(
                    Person(
                        id=entity_id,
                        email=str(value["email"]),
                        firstName=str(value.get("firstName") or ""),
                        lastName=str(value.get("lastName") or ""),
                        role=int(value["role"]),
                        agencyId=value.get("agencyId"),
                    )
                )
            return before
        snapshot = await session.get(Snapshot, (kind, entity_id))
        before = None if snapshot is None else json.loads(snapshot.data)
        if value is None:
            if snapshot is not None:
                await session.delete(snapshot)
        else:
            await session.merge(Snapshot(kind=kind, id=entity_id, data=json.dumps(value)))
        return before

    async def _schedule(
        self,
        session: AsyncSession,
        job: Job,
        root: Mapping[str, Any],
        event: BusEvent,
        now: dt.datetime,
    ) -> None:
        source = key(job.source, root)
        send_at, expires = job.when(root, now)
        if expires is not None and expires <= max(send_at, now):
            log.info("not scheduled: expired", extra={"job": job.name, "source": source})
            await self._cancel_source(session, job, source, event, now)
            return
        recipients = json.dumps(job.recipients(root))
        context = json.dumps(job.render_context(root), default=str)
        if job.on_repeat != "add":
            existing = await session.scalar(
                select(ScheduledEmail).where(
                    ScheduledEmail.job == job.name,
                    ScheduledEmail.sourceKey == source,
                    ScheduledEmail.state == "scheduled",
                )
            )
            if existing is not None:
                if job.on_repeat == "reschedule":
                    existing.sendAt, existing.expiresAt = send_at, expires
                    existing.recipients, existing.context = recipients, context
                    existing.updatedAt = now
                    self._log(
                        session, existing, "scheduled", f"job:{job.name}",
                        f"rescheduled for {send_at.isoformat()} by event {event.id}", now,
                    )  # fmt: skip
                return
        email_id = new_id()
        email = ScheduledEmail(
            id=email_id,
            job=job.name,
            sourceKey=source,
            triggerId=event.id,
            state="scheduled",
            recipients=recipients,
            template=job.template,
            context=context,
            sendAt=send_at,
            expiresAt=expires,
            attempts=0,
            maxAttempts=job.max_attempts,
            messageId=f"<{email_id}@{self.settings.message_id_domain}>",
            createdAt=now,
            updatedAt=now,
        )
        session.add(email)
        await session.flush()
        self._log(session, email, None, f"job:{job.name}", f"event {event.type} {event.id}", now)

    async def _cancel_source(
        self, session: AsyncSession, job: Job, source: str, event: BusEvent, now: dt.datetime
    ) -> None:
        rows = await session.scalars(
            select(ScheduledEmail).where(
                ScheduledEmail.job == job.name,
                ScheduledEmail.sourceKey == source,
                ScheduledEmail.state == "scheduled",
            )
        )
        for email in rows.all():
            self._move(session, email, "cancelled", f"job:{job.name}", f"event {event.type}", now)

    # -- the worker --------------------------------------------------------------------------

    async def claim(self, limit: int | None = None) -> list[ScheduledEmail]:
        """Take up to ``limit`` due emails under a lease; each is held by one worker."""
        now = self.clock.now()
        until = now + dt.timedelta(seconds=self.settings.lease_seconds)
        E = ScheduledEmail
        due = or_(
            and_(E.state == "scheduled", E.sendAt <= now),
            and_(E.state == "locked", E.lockedUntil < now),
        )
        async with self.db.transaction() as session:
            pick = (
                select(E.id).where(due).order_by(E.sendAt, E.id).limit(limit or self.settings.batch)
            )
            if session.get_bind().dialect.name == "postgresql":
                pick = pick.with_for_update(skip_locked=True)
            stmt = (
                update(E)
                .where(E.id.in_(pick.scalar_subquery()), due)
                .values(
                    state="locked",
                    lockedBy=self.worker_id,
                    lockedUntil=until,
                    attempts=E.attempts + 1,
                    claimedFrom=case((E.state == "locked", E.lockedBy), else_=None),
                    updatedAt=now,
                )
                .returning(E)
                .execution_options(synchronize_session=False)
            )
            claimed = list((await session.scalars(stmt)).all())
            for email in claimed:
                note = f"attempt {email.attempts} of {email.maxAttempts}"
                if email.claimedFrom:
                    note += f"; the lease of worker {email.claimedFrom} had lapsed"
                self._log(
                    session, email, "locked" if email.claimedFrom else "scheduled",
                    f"worker:{self.worker_id}", note, now, to_state="locked",
                )  # fmt: skip
        return claimed

    async def deliver(self, email: ScheduledEmail) -> str:
        """Send one claimed email; returns the state it ends in."""
        now = self.clock.now()
        actor = f"worker:{self.worker_id}"
        if email.expiresAt is not None and email.expiresAt <= now:
            return await self._finish(email, "cancelled", actor, "expired before it was sent")
        if email.attempts > email.maxAttempts:
            return await self._finish(email, "failed", actor, "no attempts left")
        if not await self._still_mine(email):
            return "locked"  # the lease lapsed while earlier emails of the batch were sent
        try:
            message, addresses, subject = await self._compose(email)
            await self.transport.send(message)
        except (Undeliverable, tpl.TemplateProblem, PermanentFailure) as exc:
            return await self._finish(email, "failed", actor, self._mask(email, str(exc))[:2000])
        except (TemporaryFailure, DirectoryUnavailable, Exception) as exc:
            if email.attempts >= email.maxAttempts:
                note = f"gave up after {email.attempts} attempts: {exc}"
                return await self._finish(email, "failed", actor, note[:2000])
            delay = min(
                self.settings.backoff_base_seconds * 2 ** (email.attempts - 1),
                self.settings.backoff_max_seconds,
            ) * (1 + 0.1 * self.rng())
            retry_at = now + dt.timedelta(seconds=delay)
            if not isinstance(exc, TemporaryFailure | DirectoryUnavailable):
                log.exception("sending an email failed", extra={"email": email.id})
            note = f"retry at {retry_at.isoformat()}: {type(exc).__name__}: {exc}"
            return await self._finish(email, "scheduled", actor, note[:2000], send_at=retry_at)
        return await self._finish(
            email, "succeeded", actor, f"sent to {len(addresses)}", sent_to=addresses,
            subject=self._mask(email, subject),
        )  # fmt: skip

    async def _still_mine(self, email: ScheduledEmail) -> bool:
        """Extend this worker's lease on one email just before sending it; False if the
        lease lapsed and another worker took the email meanwhile."""
        now = self.clock.now()
        until = now + dt.timedelta(seconds=self.settings.lease_seconds)
        async with self.db.transaction() as session:
            result = await session.execute(
                update(ScheduledEmail)
                .where(
                    ScheduledEmail.id == email.id,
                    ScheduledEmail.state == "locked",
                    ScheduledEmail.lockedBy == self.worker_id,
                )
                .values(lockedUntil=until)
                .execution_options(synchronize_session=False)
            )
        return bool(getattr(result, "rowcount", 0))

    def _mask(self, email: ScheduledEmail, text: str) -> str:
        """``text`` with the email's secret context values (a password link's token)
        hidden: what the mailer stores and shows never carries them."""
        job = self.jobs.get(email.job)
        if job is None or not job.secret:
            return text
        context = json.loads(email.context)
        for name in job.secret:
            value = context.get(name)
            if isinstance(value, str) and value:
                text = text.replace(value, "[hidden]")
        return text

    async def _finish(
        self,
        email: ScheduledEmail,
        state: str,
        actor: str,
        note: str,
        *,
        send_at: dt.datetime | None = None,
        sent_to: list[str] | None = None,
        subject: str | None = None,
    ) -> str:
        now = self.clock.now()
        note = self._mask(email, note)
        async with self.db.transaction() as session:
            row = await session.get(ScheduledEmail, email.id, with_for_update=True)
            if row is None:
                return state
            if row.state != "locked" or row.lockedBy != self.worker_id:
                # Another worker took it after this one's lease lapsed: its outcome counts.
                self._log(
                    session, row, row.state, actor,
                    f"late outcome ignored ({state}: {note}); held by {row.lockedBy}", now,
                    to_state=row.state,
                )  # fmt: skip
                return row.state
            row.lockedBy, row.lockedUntil = None, None
            if send_at is not None:
                row.sendAt = send_at
            if sent_to is not None:
                row.sentTo = json.dumps(sent_to)
            if subject is not None:
                row.subject = subject
            if state in ("scheduled", "failed"):
                row.lastError = note
            self._move(session, row, state, actor, note, now)
        return state

    async def fire_schedules(self) -> int:
        """Schedule the emails of schedule-triggered jobs whose latest occurrence has come
        and is not older than the job's grace. Each occurrence once, however many workers
        or overlapping ``--once`` runs look (the inbox keys it); one missed by longer than
        the grace (the mailer was down) is skipped, not sent late."""
        now = self.clock.now()
        fired = 0
        for job in self._scheduled:
            assert job.schedule is not None
            moment = job.schedule.latest(now, job.grace)
            if moment is None:
                continue
            occurrence = moment.isoformat()
            digest = hashlib.sha256(f"{job.name}\n{occurrence}".encode()).hexdigest()
            event = BusEvent(
                type="schedule",
                data={"job": job.name, "occurrence": occurrence},
                id="schedule-" + digest[:40],
                time=occurrence,
            )
            async with self.db.transaction() as session:
                if not await first_time(session, inbox, event.id):
                    continue
                root = {
                    "id": event.id,
                    "type": event.type,
                    "time": occurrence,
                    "data": event.data,
                    "before": None,
                }
                await self._schedule(session, job, root, event, now)
            fired += 1
        return fired

    async def run_once(self) -> int:
        """Send everything due now (claiming in batches); how many emails were handled."""
        await self.fire_schedules()
        handled = 0
        while True:
            batch = await self.claim()
            if not batch:
                return handled
            for email in batch:
                await self.deliver(email)
            handled += len(batch)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:
                log.exception("mailer worker round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.poll_seconds)

    # -- composing ---------------------------------------------------------------------------

    async def _compose(self, email: ScheduledEmail) -> tuple[EmailMessage, list[str], str]:
        addresses = await self._addresses(json.loads(email.recipients))
        if not addresses:
            raise Undeliverable("no recipient")
        context = await self._context(json.loads(email.context))
        context.setdefault("public_url", self.settings.public_url.rstrip("/"))
        async with self.db.session() as session:
            template = await session.get(Template, email.template)
        if template is None:
            raise Undeliverable(f"template {email.template!r} does not exist")
        parts = tpl.render(tpl.Parts(template.subject, template.text, template.html), context)
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = [_address(a) for a in addresses]
        message["Subject"] = parts.subject
        message["Message-ID"] = email.messageId
        message["Date"] = format_datetime(self.clock.now())
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
        message["X-Aidpost-Job"] = email.job
        unsubscribe = context.get("unsubscribe_url")
        if (
            isinstance(unsubscribe, str)
            and unsubscribe.startswith(("https://", "http://"))
            and not any(c in unsubscribe for c in "\r\n<> ")
        ):
            # RFC 8058 one-click unsubscribe: mail clients POST to the URL.
            message["List-Unsubscribe"] = f"<{unsubscribe}>"
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message.set_content(parts.text)
        if parts.html:
            message.add_alternative(parts.html, subtype="html")
        return message, addresses, parts.subject

    async def _addresses(self, specs: Sequence[Mapping[str, Any]]) -> list[str]:
        found: list[str] = []
        participant_ids: list[int] = []
        async with self.db.session() as session:
            for spec in specs:
                if "address" in spec:
                    found.append(_valid(spec["address"]))
                elif "staff_of" in spec:
                    if spec["staff_of"] is None:
                        continue
                    rows = await session.scalars(
                        select(Person.email).where(
                            Person.agencyId == int(spec["staff_of"]),
                            Person.role.in_([int(r) for r in spec["roles"]]),
                        )
                    )
                    found.extend(rows.all())
                elif "platform_admins" in spec:
                    rows = await session.scalars(
                        select(Person.email).where(Person.role.in_(ADMIN_ROLES))
                    )
                    found.extend(rows.all())
                elif "person" in spec and spec["person"] is not None:
                    person = await session.get(Person, int(spec["person"]))
                    if person is not None:
                        found.append(person.email)
                elif "participant" in spec and spec["participant"] is not None:
                    participant_ids.append(int(spec["participant"]))
        if participant_ids:
            users = await self.directory.users(participant_ids)
            found.extend(str(u["email"]) for u in users.values() if u.get("email"))
        return sorted({_valid(a) for a in found})

    async def _context(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with self.db.session() as session:
            for name, value in stored.items():
                if not (isinstance(value, dict) and "$current" in value):
                    out[name] = value
                    continue
                kind, ident = value["$current"], value.get("id")
                if ident is None:
                    out[name] = None
                elif kind in ("agency", "event"):
                    snap = await session.get(Snapshot, (kind, int(ident)))
                    out[name] = None if snap is None else json.loads(snap.data)
                elif kind == "person":
                    person = await session.get(Person, int(ident))
                    out[name] = None if person is None else _person(person)
                elif kind == "transcript":
                    if self.transcripts is None:
                        raise Undeliverable("no transcript source is configured")
                    out[name] = await self.transcripts.transcript(str(ident))
                    if out[name] is None:
                        raise Undeliverable(f"chat {ident} has no transcript (not ended?)")
                else:
                    users = await self.directory.users([int(ident)])
                    out[name] = users.get(int(ident))
        return out

    # -- staff -------------------------------------------------------------------------------

    async def role_of(self, user_id: int) -> int | None:
        """The organizer role of a person the mailer knows, else None."""
        async with self.db.session() as session:
            person = await session.get(Person, user_id)
        return None if person is None else person.role

    def carries_secrets(self, template: str) -> bool:
        """A template some job renders with secret values (a password link)."""
        return any(j.secret and j.template == template for j in self.jobs.values())

    async def emails(self, filters: Filters) -> tuple[int, list[ScheduledEmail]]:
        E = ScheduledEmail
        stmt = select(E)
        if filters.state:
            stmt = stmt.where(E.state == filters.state)
        if filters.job:
            stmt = stmt.where(E.job == filters.job)
        if filters.recipient:
            pattern = "%" + _like(filters.recipient.lower()) + "%"
            stmt = stmt.where(
                or_(
                    func.lower(E.sentTo).like(pattern, escape="\\"),
                    func.lower(E.recipients).like(pattern, escape="\\"),
                )
            )
        async with self.db.session() as session:
            total = int(
                await session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
            )
            rows = await session.scalars(
                stmt.order_by(E.sendAt.desc(), E.id).limit(filters.limit).offset(filters.offset)
            )
            return total, list(rows.all())

    async def email(self, email_id: str) -> tuple[ScheduledEmail, list[EmailLog]]:
        async with self.db.session() as session:
            email = await session.get(ScheduledEmail, email_id[:32])
            if email is None:
                raise NotFound("email not found")
            logs = await session.scalars(
                select(EmailLog).where(EmailLog.emailId == email.id).order_by(EmailLog.id)
            )
            return email, list(logs.all())

    async def cancel(self, email_id: str, actor: str) -> ScheduledEmail:
        return await self._staff_move(email_id, actor, ("scheduled",), "cancelled", "cancelled")

    async def reschedule(self, email_id: str, when: dt.datetime, actor: str) -> ScheduledEmail:
        """A scheduled email moves; a failed or cancelled one is tried again, from scratch."""
        return await self._staff_move(
            email_id, actor, ("scheduled", "failed", "cancelled"), "scheduled",
            f"rescheduled for {when.isoformat()}", send_at=when,
        )  # fmt: skip

    async def _staff_move(
        self,
        email_id: str,
        actor: str,
        allowed: tuple[str, ...],
        state: str,
        note: str,
        *,
        send_at: dt.datetime | None = None,
    ) -> ScheduledEmail:
        now = self.clock.now()
        async with self.db.transaction() as session:
            email = await session.get(ScheduledEmail, email_id[:32], with_for_update=True)
            if email is None:
                raise NotFound("email not found")
            if email.state not in allowed:
                if email.state == "locked":
                    raise BadRequest("email is being sent right now; try again in a moment")
                raise BadRequest(f"a {email.state} email cannot be {note.split()[0]}")
            if send_at is not None:
                email.sendAt = send_at
                if email.state != "scheduled":
                    email.attempts = 0
            self._move(session, email, state, actor, note, now)
            return email

    async def resend(self, email_id: str, actor: str) -> ScheduledEmail:
        """A new email (new Message-ID) with the same job, recipients and context, now."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            original = await session.get(ScheduledEmail, email_id[:32])
            if original is None:
                raise NotFound("email not found")
            if original.state in OPEN_STATES:
                raise BadRequest("email is not sent yet; reschedule it instead")
            copy_id = new_id()
            copy = ScheduledEmail(
                id=copy_id,
                job=original.job,
                sourceKey=original.sourceKey,
                triggerId=f"resend:{copy_id}",
                state="scheduled",
                recipients=original.recipients,
                template=original.template,
                context=original.context,
                sendAt=now,
                expiresAt=None,
                attempts=0,
                maxAttempts=original.maxAttempts,
                messageId=f"<{copy_id}@{self.settings.message_id_domain}>",
                resendOf=original.id,
                createdAt=now,
                updatedAt=now,
            )
            session.add(copy)
            await session.flush()
            self._log(session, copy, None, actor, f"resend of {original.id}", now)
            self._log(
                session, original, original.state, actor, f"resent as {copy_id}", now,
                to_state=original.state,
            )  # fmt: skip
            return copy

    # -- templates ---------------------------------------------------------------------------

    async def seed_templates(self) -> None:
        """Shipped templates into the database: new ones added, unedited ones updated."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            for name, parts in tpl.shipped().items():
                row = await session.get(Template, name)
                if row is None:
                    session.add(
                        Template(
                            name=name, subject=parts.subject, text=parts.text, html=parts.html,
                            edited=0, updatedAt=now, updatedBy="deploy",
                        )
                    )  # fmt: skip
                elif not row.edited and (row.subject, row.text, row.html) != (
                    parts.subject,
                    parts.text,
                    parts.html,
                ):
                    row.subject, row.text, row.html = parts.subject, parts.text, parts.html
                    row.updatedAt, row.updatedBy = now, "deploy"

    async def templates(self) -> list[Template]:
        async with self.db.session() as session:
            return list((await session.scalars(select(Template).order_by(Template.name))).all())

    async def template(self, name: str) -> Template:
        async with self.db.session() as session:
            row = await session.get(Template, name[:100])
        if row is None:
            raise NotFound("template not found")
        return row

    async def save_template(self, name: str, parts: tpl.Parts, actor: str) -> Template:
        tpl.check(parts)
        now = self.clock.now()
        async with self.db.transaction() as session:
            row = await session.get(Template, name[:100])
            if row is None:
                # A new template (for a job of AIDPOST_MAILER_JOBS_DIR), without a deploy.
                if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,99}", name):
                    raise BadRequest(
                        "a new template's name is lower-case letters, digits and dashes"
                    )
                row = Template(name=name)
                session.add(row)
            row.subject, row.text, row.html = parts.subject, parts.text, parts.html
            row.edited, row.updatedAt, row.updatedBy = 1, now, actor
            return row

    # -- state moves -------------------------------------------------------------------------

    def _move(
        self,
        session: AsyncSession,
        email: ScheduledEmail,
        state: str,
        actor: str,
        note: str,
        now: dt.datetime,
    ) -> None:
        previous = email.state
        email.state, email.updatedAt = state, now
        if state != "locked":
            email.lockedBy = email.lockedUntil = None
        job = self.jobs.get(email.job)
        if state in ("succeeded", "failed", "cancelled") and job is not None and job.secret:
            stored = json.loads(email.context)
            email.context = json.dumps({k: v for k, v in stored.items() if k not in job.secret})
        self._log(session, email, previous, actor, note, now, to_state=state)

    @staticmethod
    def _log(
        session: AsyncSession,
        email: ScheduledEmail,
        from_state: str | None,
        actor: str,
        note: str,
        now: dt.datetime,
        *,
        to_state: str | None = None,
    ) -> None:
        session.add(
            EmailLog(
                emailId=email.id,
                at=now,
                fromState=from_state,
                toState=to_state or email.state,
                actor=actor[:100],
                note=note,
            )
        )


def _person(person: Person) -> dict[str, Any]:
    return {
        "id": person.id,
        "email": person.email,
        "firstName": person.firstName,
        "lastName": person.lastName,
        "role": person.role,
        "agencyId": person.agencyId,
    }


def _valid(address: Any) -> str:
    """A deliverable-looking address, normalised; anything else (line breaks included: a
    header injection attempt) is refused."""
    if not isinstance(address, str) or any(c in address for c in "\r\n\x00"):
        raise Undeliverable(f"refused recipient {str(address)[:200]!r}")
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise Undeliverable(f"refused recipient {address[:200]!r}: {exc}") from exc


def _address(text: str) -> Address:
    """``Name <user@host>`` or ``user@host`` as a header address."""
    name, _, rest = text.rpartition("<")
    addr = rest.rstrip(">").strip() if rest.endswith(">") else text.strip()
    valid = _valid(addr)
    user, _, domain = valid.rpartition("@")
    return Address(display_name=name.strip().strip('"') if rest.endswith(">") else "",
                   username=user, domain=domain)  # fmt: skip


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
