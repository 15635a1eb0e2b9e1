"""The console's platform pages for administrators: the automated emails (``/mailer-api``)
and the status page (``/statuspage-api``). Thin like the rest: each page is one or two API
calls with the administrator's token; the APIs decide who may do what."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from aidpost.core.errors import BadRequest, NotFound
from aidpost.web.console import Signed, page, router
from aidpost.web.forms import Field
from aidpost.web.pages import env, form_lists, form_of, redirect
from aidpost.web.security import CONSOLE
from aidpost.web.upstream import UpstreamError

MAIL = "/mailer-api"
STATUS = "/statuspage-api"
EMAIL_STATES = ("scheduled", "locked", "succeeded", "failed", "cancelled")
PER_PAGE = 50
WHEN = Field("sendAt", "Send at (UTC)", "datetime")


ROLE_WORDS = {0: "superadmin", 1: "admins", 2: "owner", 3: "managers", 4: "support"}


def recipient(spec: Any) -> str:
    """A job's recipient as people read it (the addresses are known once it is sent)."""
    if isinstance(spec, str):
        return spec
    if not isinstance(spec, dict):
        return str(spec)
    if "address" in spec:
        return str(spec["address"])
    if "staff_of" in spec:
        roles = ", ".join(ROLE_WORDS.get(r, str(r)) for r in spec.get("roles", []))
        return f"agency #{spec['staff_of']}: {roles}"
    if "platform_admins" in spec:
        return "platform administrators"
    if "person" in spec:
        return f"staff member #{spec['person']}"
    if "participant" in spec:
        return f"participant #{spec['participant']}"
    return str(spec)


env.filters["recipient"] = recipient


def _key(text: str, limit: int = 100) -> str:
    """An id as the APIs make them (letters, digits, - and _): nothing that moves the path."""
    if (
        not text
        or len(text) > limit
        or not all(c.isascii() and (c.isalnum() or c in "-_") for c in text)
    ):
        raise NotFound("There is no such record.")
    return text


# -- automated emails ------------------------------------------------------------------------


@router.get("/admin/emails", operation_id="consoleEmails")
async def emails(request: Request, s: Signed) -> Response:
    q = request.query_params
    state = q.get("state", "")
    params: dict[str, Any] = {"limit": PER_PAGE}
    if state in EMAIL_STATES:
        params["state"] = state
    for name in ("job", "recipient"):
        value = q.get(name, "").strip()[:100]
        if value:
            params[name] = value
    page_no = int(q["page"]) if q.get("page", "").isascii() and q.get("page", "").isdigit() else 1
    page_no = max(1, min(page_no, 10_000))
    params["offset"] = (page_no - 1) * PER_PAGE
    found = await s.api("GET", f"{MAIL}/emails", params=params)
    filters = {k: v for k, v in params.items() if k in ("state", "job", "recipient")}
    return page(s, "console/emails.html", emails=found["emails"], total=found["total"],
                filters=filters, states=EMAIL_STATES, page_no=page_no,
                pages=max(1, -(-found["total"] // PER_PAGE)))  # fmt: skip


@router.get("/admin/emails/{email_id}", operation_id="consoleEmail")
async def email(s: Signed, email_id: str) -> Response:
    found = await s.api("GET", f"{MAIL}/emails/{_key(email_id, 32)}")
    return page(s, "console/email.html", email=found, when=WHEN)


@router.post("/admin/emails/{email_id}/{action}", operation_id="consoleEmailAction")
async def email_action(request: Request, s: Signed, email_id: str, action: str) -> Response:
    form = await form_of(request)
    key = _key(email_id, 32)
    if action not in ("cancel", "resend", "reschedule"):
        raise BadRequest("There is no such action.")
    body = {"sendAt": WHEN.to_api(form.get("sendAt", ""))} if action == "reschedule" else None
    try:
        made = await s.api("POST", f"{MAIL}/emails/{key}/{action}", json=body)
    except UpstreamError as exc:
        if exc.status_code != 400:
            raise
        found = await s.api("GET", f"{MAIL}/emails/{key}")
        return page(s, "console/email.html", 400, email=found, when=WHEN, errors=exc.messages)
    done = {"cancel": "The email is cancelled.", "resend": "A new copy is on its way.",
            "reschedule": "The email is rescheduled."}[action]  # fmt: skip
    return redirect(request, CONSOLE, f"/console/admin/emails/{made['id']}", done)


@router.get("/admin/email-templates", operation_id="consoleEmailTemplates")
async def email_templates(s: Signed) -> Response:
    templates = await s.api("GET", f"{MAIL}/templates")
    jobs = await s.api("GET", f"{MAIL}/jobs")
    return page(s, "console/email_templates.html", templates=templates, jobs=jobs)


@router.get("/admin/email-templates/{name}", operation_id="consoleEmailTemplate")
async def email_template(s: Signed, name: str) -> Response:
    found = await s.api("GET", f"{MAIL}/templates/{_key(name)}")
    return page(s, "console/email_template.html", tpl=found, values=found)


@router.post("/admin/email-templates/{name}", operation_id="consoleEmailTemplateSave")
async def email_template_save(request: Request, s: Signed, name: str) -> Response:
    # Templates are long (the API takes 100 000 + 200 000 characters), and URL-encoded.
    form = await form_of(request, max_bytes=1_000_000)
    key = _key(name)
    body = {"subject": form.get("subject", ""), "text": form.get("text", "")}
    if form.get("html", "").strip():
        body["html"] = form["html"]
    try:
        await s.api("PUT", f"{MAIL}/templates/{key}", json=body)
    except UpstreamError as exc:
        if exc.status_code != 400:
            raise
        found = await s.api("GET", f"{MAIL}/templates/{key}")
        return page(s, "console/email_template.html", 400, tpl=found, values=form,
                    errors=exc.messages)  # fmt: skip
    return redirect(request, CONSOLE, f"/console/admin/email-templates/{key}",
                    "The template is saved; the next email uses it.")  # fmt: skip


# -- the status page -------------------------------------------------------------------------

COMPONENT_STATUSES = (
    ("operational", "Operational"),
    ("degraded_performance", "Degraded performance"),
    ("partial_outage", "Partial outage"),
    ("major_outage", "Major outage"),
    ("under_maintenance", "Under maintenance"),
)
INCIDENT_STATUSES = (
    ("investigating", "Investigating"),
    ("identified", "Identified"),
    ("monitoring", "Monitoring"),
    ("resolved", "Resolved"),
    ("postmortem", "Postmortem"),
)
MAINTENANCE_STATUSES = (
    ("scheduled", "Scheduled"),
    ("in_progress", "In progress"),
    ("verifying", "Verifying"),
    ("completed", "Completed"),
    ("cancelled", "Cancelled"),
)
IMPACTS = (("none", "None"), ("minor", "Minor"), ("major", "Major"), ("critical", "Critical"))
LABELS = dict(COMPONENT_STATUSES + INCIDENT_STATUSES + MAINTENANCE_STATUSES + IMPACTS)


async def _status_page(s: Signed, status_code: int = 200, **context: Any) -> Response:
    components = await s.api("GET", f"{STATUS}/components")
    incidents = await s.api("GET", f"{STATUS}/incidents")
    subscribers = await s.api("GET", f"{STATUS}/subscribers")
    return page(s, "console/status_admin.html", status_code, components=components,
                incidents=incidents, subscribers=subscribers, statuses=COMPONENT_STATUSES,
                incident_statuses=INCIDENT_STATUSES, impacts=IMPACTS, labels=LABELS,
                **context)  # fmt: skip


@router.get("/admin/status", operation_id="consoleStatus")
async def status_admin(s: Signed) -> Response:
    return await _status_page(s)


def _affected(fields: dict[str, list[str]]) -> list[dict[str, str]]:
    """``component`` checkboxes, each with its ``status:<id>`` choice."""
    out = []
    for comp in fields.get("component", [])[:100]:
        status = (fields.get(f"status:{comp}") or ["partial_outage"])[0]
        out.append({"id": comp, "status": status})
    return out


async def _status_call(
    request: Request, s: Signed, method: str, path: str, body: Any, done: str, back: str
) -> Response:
    try:
        await s.api(method, path, json=body)
    except UpstreamError as exc:
        if exc.status_code != 400:
            raise
        if back.startswith("/console/admin/status/incidents/"):
            return await _incident_page(s, back.rsplit("/", 1)[1], 400, errors=exc.messages)
        return await _status_page(s, 400, errors=exc.messages)
    return redirect(request, CONSOLE, back, done)


@router.post("/admin/status/components/{component_id}", operation_id="consoleStatusComponent")
async def status_component(request: Request, s: Signed, component_id: str) -> Response:
    form = await form_of(request)
    manual = form.get("manual_status") or None
    return await _status_call(request, s, "PATCH", f"{STATUS}/components/{_key(component_id)}",
                              {"manual_status": manual}, "The component is saved.",
                              "/console/admin/status")  # fmt: skip


@router.post(
    "/admin/status/subscribers/{subscriber_id}/delete", operation_id="consoleStatusUnsubscribe"
)
async def status_unsubscribe(request: Request, s: Signed, subscriber_id: str) -> Response:
    await form_of(request)
    return await _status_call(request, s, "DELETE",
                              f"{STATUS}/subscribers/{_key(subscriber_id)}", None,
                              "The subscriber is removed.", "/console/admin/status")  # fmt: skip


@router.post("/admin/status/incidents", operation_id="consoleStatusOpenIncident")
async def status_open_incident(request: Request, s: Signed) -> Response:
    fields = await form_lists(request)
    one = {k: v[0] for k, v in fields.items()}
    body = {
        "name": one.get("name", "").strip(),
        "status": one.get("status", "investigating"),
        "impact": one.get("impact", "minor"),
        "body": one.get("body", "").strip(),
        "components": _affected(fields),
    }
    return await _status_call(request, s, "POST", f"{STATUS}/incidents", body,
                              "The incident is published.", "/console/admin/status")  # fmt: skip


@router.post("/admin/status/maintenances", operation_id="consoleStatusMaintenance")
async def status_maintenance(request: Request, s: Signed) -> Response:
    fields = await form_lists(request)
    one = {k: v[0] for k, v in fields.items()}
    start, end = Field("from", "", "datetime"), Field("until", "", "datetime")
    body = {
        "name": one.get("name", "").strip(),
        "body": one.get("body", "").strip(),
        "scheduled_for": start.to_api(one.get("from", "")),
        "scheduled_until": end.to_api(one.get("until", "")),
        "components": fields.get("component", [])[:100],
    }
    return await _status_call(request, s, "POST", f"{STATUS}/maintenances", body,
                              "The maintenance is scheduled.", "/console/admin/status")  # fmt: skip


async def _incident_page(s: Signed, incident_id: str, status_code: int = 200,
                         **context: Any) -> Response:  # fmt: skip
    found = await s.api("GET", f"{STATUS}/incidents/{_key(incident_id)}")
    components = await s.api("GET", f"{STATUS}/components")
    maintenance = "scheduled_for" in found
    return page(s, "console/status_incident.html", status_code, incident=found,
                components=components, statuses=COMPONENT_STATUSES, maintenance=maintenance,
                incident_statuses=MAINTENANCE_STATUSES if maintenance else INCIDENT_STATUSES,
                labels=LABELS, **context)  # fmt: skip


@router.get("/admin/status/incidents/{incident_id}", operation_id="consoleStatusIncident")
async def status_incident(s: Signed, incident_id: str) -> Response:
    return await _incident_page(s, incident_id)


@router.post("/admin/status/incidents/{incident_id}", operation_id="consoleStatusUpdate")
async def status_update(request: Request, s: Signed, incident_id: str) -> Response:
    fields = await form_lists(request)
    one = {k: v[0] for k, v in fields.items()}
    key = _key(incident_id)
    body: dict[str, Any] = {"status": one.get("status", ""), "body": one.get("body", "").strip()}
    affected = _affected(fields)
    if affected:
        body["components"] = affected
    return await _status_call(request, s, "POST", f"{STATUS}/incidents/{key}/updates", body,
                              "The update is published.",
                              f"/console/admin/status/incidents/{key}")  # fmt: skip
