"""The mailer's staff API under ``/mailer-api`` (platform administrators only): list and
filter emails, read one with its log, cancel, reschedule, resend; read and edit templates;
list the jobs."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from aidpost.core.deps import OrganizerPrincipal
from aidpost.core.errors import BadRequest, Forbidden
from aidpost.core.validation import parse_datetime
from aidpost.mailer.jobs import Job
from aidpost.mailer.models import STATES, EmailLog, ScheduledEmail, Template
from aidpost.mailer.service import ADMIN_ROLES, SUPERADMIN_ROLE, Filters, MailerService
from aidpost.mailer.templates import Parts, TemplateProblem

router = APIRouter(prefix="/mailer-api", tags=["mailer"])
Json = dict[str, Any]


async def _admin(request: Request, principal: OrganizerPrincipal) -> tuple[MailerService, str]:
    svc: MailerService = request.app.state.mailer
    role = await svc.role_of(principal.user_id)
    if role not in ADMIN_ROLES:
        raise Forbidden()
    request.state.mailer_role = role
    return svc, f"staff:{principal.user_id}"


Admin = Annotated[tuple[MailerService, str], Depends(_admin)]


def _text(value: str | None, name: str) -> str | None:
    """Text any database can compare and store (no NUL, no lone surrogates), else 400."""
    if value is None:
        return None
    if "\x00" in value:
        raise BadRequest(f"{name} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"{name} must be valid Unicode text") from None
    return value


def _key(value: str) -> str:
    """An email id or template name as stored (ASCII, no NUL); anything else finds nothing."""
    if not value.isascii() or "\x00" in value or len(value) > 100:
        return "-"
    return value


def _email(e: ScheduledEmail) -> Json:
    return {
        "id": e.id,
        "job": e.job,
        "source": e.sourceKey,
        "state": e.state,
        "template": e.template,
        "recipients": json.loads(e.recipients),
        "sentTo": json.loads(e.sentTo) if e.sentTo else None,
        "subject": e.subject,
        "sendAt": e.sendAt.isoformat(),
        "expiresAt": e.expiresAt.isoformat() if e.expiresAt else None,
        "attempts": e.attempts,
        "maxAttempts": e.maxAttempts,
        "lastError": e.lastError,
        "messageId": e.messageId,
        "resendOf": e.resendOf,
        "createdAt": e.createdAt.isoformat(),
        "updatedAt": e.updatedAt.isoformat(),
    }


def _log(entry: EmailLog) -> Json:
    return {
        "at": entry.at.isoformat(),
        "from": entry.fromState,
        "to": entry.toState,
        "actor": entry.actor,
        "note": entry.note,
    }


def _template(t: Template) -> Json:
    return {
        "name": t.name,
        "subject": t.subject,
        "text": t.text,
        "html": t.html,
        "edited": bool(t.edited),
        "updatedAt": t.updatedAt.isoformat(),
        "updatedBy": t.updatedBy,
    }


@router.get("/emails", operation_id="listEmails")
async def list_emails(
    admin: Admin,
    state: Annotated[str | None, Query(max_length=16)] = None,
    job: Annotated[str | None, Query(max_length=100)] = None,
    recipient: Annotated[str | None, Query(max_length=320)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Json:
    """Emails, latest first; filter by state, job or (part of) a recipient."""
    if state is not None and state not in STATES:
        raise BadRequest(f"state must be one of: {', '.join(STATES)}")
    svc, _actor = admin
    job, recipient = _text(job, "job"), _text(recipient, "recipient")
    total, rows = await svc.emails(Filters(state, job, recipient, limit, offset))
    return {"total": total, "emails": [_email(e) for e in rows]}


@router.get("/emails/{email_id}", operation_id="getEmail")
async def get_email(admin: Admin, email_id: str) -> Json:
    svc, _actor = admin
    email, logs = await svc.email(_key(email_id))
    return {**_email(email), "log": [_log(entry) for entry in logs]}


@router.post("/emails/{email_id}/cancel", operation_id="cancelEmail")
async def cancel_email(admin: Admin, email_id: str) -> Json:
    svc, actor = admin
    return _email(await svc.cancel(_key(email_id), actor))


class RescheduleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sendAt: str = Field(max_length=64)


@router.post("/emails/{email_id}/reschedule", operation_id="rescheduleEmail")
async def reschedule_email(admin: Admin, email_id: str, body: RescheduleBody) -> Json:
    try:
        when = parse_datetime(body.sendAt)
    except ValueError:
        raise BadRequest("sendAt must be an ISO 8601 date and time") from None
    svc, actor = admin
    return _email(await svc.reschedule(_key(email_id), when, actor))


@router.post("/emails/{email_id}/resend", operation_id="resendEmail")
async def resend_email(admin: Admin, email_id: str) -> Json:
    svc, actor = admin
    return _email(await svc.resend(_key(email_id), actor))


@router.get("/templates", operation_id="listTemplates")
async def list_templates(admin: Admin) -> list[Json]:
    svc, _actor = admin
    return [_template(t) for t in await svc.templates()]


@router.get("/templates/{name}", operation_id="getTemplate")
async def get_template(admin: Admin, name: str) -> Json:
    svc, _actor = admin
    return _template(await svc.template(_key(name)))


class TemplateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subject: str = Field(min_length=1, max_length=1000)
    text: str = Field(min_length=1, max_length=100_000)
    html: str | None = Field(default=None, max_length=200_000)


@router.put("/templates/{name}", operation_id="saveTemplate")
async def save_template(request: Request, admin: Admin, name: str, body: TemplateBody) -> Json:
    """Edit a template (takes effect for the next email sent; a deploy keeps the edit).
    Templates that carry secrets (password links) only the superadmin may edit."""
    svc, actor = admin
    if svc.carries_secrets(_key(name)) and request.state.mailer_role != SUPERADMIN_ROLE:
        raise Forbidden()
    try:
        parts = Parts(body.subject, body.text, body.html)
        for part, value in (("subject", body.subject), ("text", body.text), ("html", body.html)):
            _text(value, part)
        saved = await svc.save_template(_key(name), parts, actor)
    except TemplateProblem as exc:
        raise BadRequest(f"template refused: {exc}") from None
    return _template(saved)


def _next_run(job: Job, now: dt.datetime) -> str | None:
    moment = job.schedule.next_after(now) if job.schedule else None
    return moment.isoformat() if moment else None


@router.get("/jobs", operation_id="listJobs")
async def list_jobs(admin: Admin) -> list[Json]:
    svc, _actor = admin
    return [
        {
            "name": j.name,
            "description": j.description,
            "event": j.event or None,
            "schedule": j.schedule.text if j.schedule else None,
            "timezone": j.schedule.zone.key if j.schedule else None,
            "nextRun": _next_run(j, svc.clock.now()),
            "template": j.template,
            "cancelledBy": sorted({c.event for c in j.cancellers}),
            "maxAttempts": j.max_attempts,
        }
        for j in sorted(svc.jobs.values(), key=lambda j: j.name)
    ]
