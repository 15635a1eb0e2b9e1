"""The status page's HTTP API.

Public, read-only, in Atlassian Statuspage's v2 shape under ``/statuspage/api/v2``
(plus ``uptime.json``, and ``POST subscribers`` for double opt-in). The administration API
under ``/statuspage-api`` is for platform administrators only (others get 403)."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from aidpost.core.deps import OrganizerPrincipal
from aidpost.core.errors import BadRequest, Forbidden, NotFound
from aidpost.core.validation import DateTime, Email, Text
from aidpost.status import views
from aidpost.status.models import (
    CheckResult,
    IncidentTemplate,
    StatusComponent,
    Subscriber,
    Webhook,
    WebhookDelivery,
)
from aidpost.status.service import Affected, StatusService
from aidpost.status.service import key as _key

public = APIRouter(prefix="/statuspage/api/v2", tags=["status page"])
admin = APIRouter(prefix="/statuspage-api", tags=["status page administration"])
Json = dict[str, Any]
Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
ComponentStatus = Literal[
    "operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"
]
IncidentStatus = Literal["investigating", "identified", "monitoring", "resolved", "postmortem"]
MaintenanceStatus = Literal["scheduled", "in_progress", "verifying", "completed", "cancelled"]
Impact = Literal["none", "minor", "major", "critical"]


def service(request: Request) -> StatusService:
    svc: StatusService = request.app.state.status
    return svc


Service = Annotated[StatusService, Depends(service)]


# -- public --------------------------------------------------------------------------------


@public.get("/summary.json", operation_id="statusSummary")
async def summary(svc: Service) -> Json:
    """Page, components, unresolved incidents, upcoming and active maintenance, status."""
    return await views.summary(svc)


@public.get("/status.json", operation_id="statusIndicator")
async def status(svc: Service) -> Json:
    s = await views.summary(svc)
    return {"page": s["page"], "status": s["status"]}


@public.get("/components.json", operation_id="statusComponents")
async def components(svc: Service) -> Json:
    s = await views.summary(svc)
    return {"page": s["page"], "components": s["components"]}


async def _incidents(svc: Service, kind: str, open_only: bool, only: tuple[str, ...] = ()) -> Json:
    s = await views.summary(svc)
    found = await views.incidents(svc, kind=kind, open_only=open_only)
    items = [i for i in found["items"] if not only or i["status"] in only]
    key = "incidents" if kind == "incident" else "scheduled_maintenances"
    return {"page": s["page"], key: items}


@public.get("/incidents.json", operation_id="statusIncidents")
async def incidents(svc: Service) -> Json:
    """The 50 latest incidents."""
    return await _incidents(svc, "incident", False)


@public.get("/incidents/unresolved.json", operation_id="statusUnresolvedIncidents")
async def unresolved(svc: Service) -> Json:
    return await _incidents(svc, "incident", True)


@public.get("/scheduled-maintenances.json", operation_id="statusMaintenances")
async def maintenances(svc: Service) -> Json:
    return await _incidents(svc, "maintenance", False)


@public.get("/scheduled-maintenances/upcoming.json", operation_id="statusUpcomingMaintenances")
async def upcoming(svc: Service) -> Json:
    return await _incidents(svc, "maintenance", True, ("scheduled",))


@public.get("/scheduled-maintenances/active.json", operation_id="statusActiveMaintenances")
async def active(svc: Service) -> Json:
    return await _incidents(svc, "maintenance", True, ("in_progress", "verifying"))


@public.get("/uptime.json", operation_id="statusUptime")
async def uptime_all(svc: Service) -> Json:
    """aidpost's own: uptime over 24 h, 7, 30 and 90 days, and one entry per day."""
    result: Json = await svc.cached("uptime", lambda: _uptime_all(svc))
    return result


async def _uptime_all(svc: StatusService) -> Json:
    out = []
    for comp in await svc.components():
        days = await svc.days(comp.id, 90)
        out.append(
            {
                "id": comp.id,
                "name": comp.name,
                "status": comp.status,
                "uptime": await svc.uptimes(comp.id, days),
                "days": [
                    {
                        "date": day.isoformat(),
                        "uptime": t.uptime,
                        "down_seconds": round(t.down, 1),
                        "degraded_seconds": round(t.degraded, 1),
                        "maintenance_seconds": round(t.maintenance, 1),
                        "nodata_seconds": round(t.nodata, 1),
                    }
                    for day, t in days
                ],
            }
        )
    return {"components": out}


class SubscribeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Email
    components: list[Slug] | None = Field(default=None, max_length=200)


@public.post("/subscribers", operation_id="statusSubscribe", status_code=202)
async def subscribe(svc: Service, body: SubscribeBody) -> Json:
    """Double opt-in: a confirmation link goes to the address; nothing is sent before."""
    await svc.subscribe(body.email, body.components)
    return {"message": "Check your inbox: confirm the subscription with the link we sent."}


# -- administration ------------------------------------------------------------------------


async def _admin(request: Request, principal: OrganizerPrincipal) -> tuple[StatusService, str]:
    svc = service(request)
    if not await svc.is_admin(principal.user_id):
        raise Forbidden()
    return svc, f"staff:{principal.user_id}"


Admin = Annotated[tuple[StatusService, str], Depends(_admin)]


def _component(c: StatusComponent) -> Json:
    return {
        **views.component(c),
        "builtin": c.builtin,
        "kind": c.kind,
        "target": c.target,
        "expect": json.loads(c.expect or "{}"),
        "interval": c.intervalSeconds,
        "timeout": c.timeoutSeconds,
        "degraded_ms": c.degradedMs,
        "failure_threshold": c.failureThreshold,
        "tls_warn_days": c.tlsWarnDays,
        "auto_incident_minutes": c.autoIncidentMinutes,
        "manual_status": c.manualStatus,
        "status_since": views.iso(c.statusSince),
        "last_check_at": views.iso(c.lastCheckAt),
        "failures": c.failures,
    }


def _url(text: str) -> bool:
    """An http(s) URL httpx can send to (a host, no spaces, a valid IDNA name)."""
    if not text.startswith(("http://", "https://")) or any(c.isspace() for c in text):
        return False
    try:
        return bool(httpx.URL(text).host)
    except (httpx.InvalidURL, ValueError):
        return False


class Expect(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    status: list[Annotated[int, Field(ge=100, le=599)]] | None = Field(
        default=None, min_length=1, max_length=50
    )
    contains: Text(1000) | None = None  # type: ignore[valid-type]
    check: Text(100) | None = None  # type: ignore[valid-type]


class ComponentBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    id: Slug
    name: Text(200)  # type: ignore[valid-type]
    description: Text(2000, empty=True) | None = None  # type: ignore[valid-type]
    group_id: Slug | None = None
    kind: Literal["http", "tcp", "tls", "manual"]
    target: Text(2000) | None = None  # type: ignore[valid-type]
    expect: Expect = Field(default_factory=Expect)
    interval: int = Field(default=60, ge=5, le=86400)
    timeout: float = Field(default=5.0, gt=0, le=120)
    degraded_ms: int | None = Field(default=None, ge=1, le=600_000)
    failure_threshold: int = Field(default=2, ge=1, le=100)
    tls_warn_days: int = Field(default=14, ge=0, le=3650)
    auto_incident_minutes: int | None = Field(default=None, ge=0, le=10080)
    only_show_if_degraded: bool = False

    @model_validator(mode="after")
    def _target(self) -> ComponentBody:
        if self.kind == "manual":
            return self
        if not self.target:
            raise ValueError("target is required for http, tcp and tls checks")
        if self.kind == "http" and not _url(self.target):
            raise ValueError("target must be an http:// or https:// URL")
        if self.kind in ("tcp", "tls"):
            host, sep, port = self.target.rpartition(":")
            if not sep or not host or not port.isascii() or not port.isdigit():
                raise ValueError("target must be host:port")
            if not 0 < int(port) < 65536:
                raise ValueError("target port must be between 1 and 65535")
        return self


def _values(body: BaseModel, fields: set[str]) -> dict[str, Any]:
    names = {
        "group_id": "groupId",
        "interval": "intervalSeconds",
        "timeout": "timeoutSeconds",
        "degraded_ms": "degradedMs",
        "failure_threshold": "failureThreshold",
        "tls_warn_days": "tlsWarnDays",
        "auto_incident_minutes": "autoIncidentMinutes",
        "only_show_if_degraded": "onlyShowIfDegraded",
        "manual_status": "manualStatus",
    }
    data = body.model_dump(include=fields)
    if "expect" in data and data["expect"] is not None:
        data["expect"] = {k: v for k, v in data["expect"].items() if v is not None}
    return {names.get(k, k): v for k, v in data.items()}


@admin.get("/components", operation_id="adminListComponents")
async def admin_components(auth: Admin) -> list[Json]:
    svc, _actor = auth
    return [_component(c) for c in await svc.components()]


@admin.post("/components", operation_id="adminAddComponent", status_code=201)
async def add_component(auth: Admin, body: ComponentBody) -> Json:
    """An operator's own check (HTTP(S), TCP, TLS certificate) or a manual component."""
    svc, _actor = auth
    return _component(await svc.add_component(_values(body, set(ComponentBody.model_fields))))


@admin.get("/components/{component_id}", operation_id="adminGetComponent")
async def get_component(auth: Admin, component_id: str) -> Json:
    svc, _actor = auth
    comp = await svc.component(_key(component_id))
    return {**_component(comp), "uptime": await svc.uptimes(comp.id)}


class ComponentPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: Text(200) | None = None  # type: ignore[valid-type]
    description: Text(2000, empty=True) | None = None  # type: ignore[valid-type]
    group_id: Slug | None = None
    target: Text(2000) | None = None  # type: ignore[valid-type]
    interval: int | None = Field(default=None, ge=5, le=86400)
    timeout: float | None = Field(default=None, gt=0, le=120)
    degraded_ms: int | None = Field(default=None, ge=1, le=600_000)
    failure_threshold: int | None = Field(default=None, ge=1, le=100)
    auto_incident_minutes: int | None = Field(default=None, ge=0, le=10080)
    only_show_if_degraded: bool | None = None
    # null: follow the checks again.
    manual_status: ComponentStatus | None = None


@admin.patch("/components/{component_id}", operation_id="adminChangeComponent")
async def change_component(auth: Admin, component_id: str, body: ComponentPatch) -> Json:
    """Change an operator's component; on a configured one only ``manual_status``."""
    svc, _actor = auth
    fields = set(body.model_fields_set)
    for name in fields - {"manual_status", "description", "degraded_ms", "auto_incident_minutes"}:
        if getattr(body, name) is None:
            raise BadRequest(f"{name} must not be null")
    comp = await svc.change_component(_key(component_id), _values(body, fields))
    return _component(comp)


@admin.delete("/components/{component_id}", operation_id="adminDeleteComponent")
async def delete_component(auth: Admin, component_id: str) -> Json:
    svc, _actor = auth
    await svc.delete_component(_key(component_id))
    return {"deleted": True}


def _result(r: CheckResult) -> Json:
    return {
        "at": views.iso(r.at),
        "ok": r.ok,
        "degraded": r.degraded,
        "response_ms": r.responseMs,
        "detail": r.detail,
    }


@admin.get("/components/{component_id}/results", operation_id="adminCheckResults")
async def results(
    auth: Admin, component_id: str, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[Json]:
    svc, _actor = auth
    return [_result(r) for r in await svc.results(_key(component_id), limit)]


class GroupBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Slug
    name: Text(200)  # type: ignore[valid-type]


@admin.post("/groups", operation_id="adminAddGroup", status_code=201)
async def add_group(auth: Admin, body: GroupBody) -> Json:
    svc, _actor = auth
    g = await svc.add_group(body.id, body.name)
    return {"id": g.id, "name": g.name, "position": g.position, "builtin": g.builtin}


@admin.delete("/groups/{group_id}", operation_id="adminDeleteGroup")
async def delete_group(auth: Admin, group_id: str) -> Json:
    svc, _actor = auth
    await svc.delete_group(_key(group_id))
    return {"deleted": True}


class AffectedBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Slug
    status: ComponentStatus = "major_outage"


class IncidentBody(BaseModel):
    """An incident; with ``template``, what is not given comes from the template."""

    model_config = ConfigDict(extra="forbid")
    template: Slug | None = None
    name: Text(300) | None = None  # type: ignore[valid-type]
    status: IncidentStatus | None = None
    impact: Impact | None = None
    body: Text(10_000) | None = None  # type: ignore[valid-type]
    components: list[AffectedBody] | None = Field(default=None, max_length=200)
    notify: bool = True


async def _incident_json(svc: StatusService, incident_id: str) -> Json:
    inc, updates, comps = await svc.incident(incident_id)
    by_id = {c.id: c for c in await svc.components()}
    return views.incident(svc, inc, updates, comps, by_id)


@admin.post("/incidents", operation_id="adminOpenIncident", status_code=201)
async def open_incident(auth: Admin, body: IncidentBody) -> Json:
    svc, actor = auth
    name, text, status, impact = body.name, body.body, body.status, body.impact
    affected = (
        None if body.components is None else [Affected(a.id, a.status) for a in body.components]
    )
    if body.template is not None:
        try:
            template = await svc.template(body.template)
        except NotFound:
            raise BadRequest(f"template {body.template!r} does not exist") from None
        name, text = name or template.name, text or template.body
        status = status or template.status  # type: ignore[assignment]
        impact = impact or template.impact  # type: ignore[assignment]
        if affected is None:
            affected = [Affected(a["id"], a["status"]) for a in json.loads(template.components)]
    if not name or not text:
        raise BadRequest("name and body are required (or a template that gives them)")
    status = status or "investigating"
    if status in ("resolved", "postmortem"):
        raise BadRequest("a new incident must be open (investigating, identified, monitoring)")
    inc = await svc.open_incident(
        name=name,
        status=status,
        impact=impact or "minor",
        body=text,
        affected=affected or [],
        actor=actor,
        notify=body.notify,
    )
    return await _incident_json(svc, inc.id)


class TemplateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text(300)  # type: ignore[valid-type]
    body: Text(10_000)  # type: ignore[valid-type]
    status: Literal["investigating", "identified", "monitoring"] = "investigating"
    impact: Impact = "minor"
    components: list[AffectedBody] = Field(default_factory=list, max_length=200)


def _template(t: IncidentTemplate) -> Json:
    return {
        "id": t.id,
        "name": t.name,
        "body": t.body,
        "status": t.status,
        "impact": t.impact,
        "components": json.loads(t.components),
        "updated_at": views.iso(t.updatedAt),
    }


@admin.get("/incident-templates", operation_id="adminListIncidentTemplates")
async def templates(auth: Admin) -> list[Json]:
    svc, _actor = auth
    return [_template(t) for t in await svc.templates()]


@admin.put("/incident-templates/{template_id}", operation_id="adminSaveIncidentTemplate")
async def save_template(auth: Admin, template_id: str, body: TemplateBody) -> Json:
    """Make or replace a template (ids: lower-case letters, digits and dashes)."""
    svc, _actor = auth
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", template_id):
        raise BadRequest("template id must be lower-case letters, digits and dashes")
    saved = await svc.save_template(
        template_id,
        name=body.name,
        body=body.body,
        status=body.status,
        impact=body.impact,
        affected=[Affected(a.id, a.status) for a in body.components],
    )
    return _template(saved)


@admin.delete("/incident-templates/{template_id}", operation_id="adminDeleteIncidentTemplate")
async def delete_template(auth: Admin, template_id: str) -> Json:
    svc, _actor = auth
    await svc.delete_template(_key(template_id))
    return {"deleted": True}


class MaintenanceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text(300)  # type: ignore[valid-type]
    body: Text(10_000)  # type: ignore[valid-type]
    scheduled_for: DateTime
    scheduled_until: DateTime
    components: list[Slug] = Field(default_factory=list, max_length=200)
    auto_transition: bool = True
    notify: bool = True


@admin.post("/maintenances", operation_id="adminScheduleMaintenance", status_code=201)
async def schedule_maintenance(auth: Admin, body: MaintenanceBody) -> Json:
    """Starts (components under maintenance) and completes on time by itself, unless
    ``auto_transition`` is false."""
    svc, actor = auth
    inc = await svc.schedule_maintenance(
        name=body.name,
        body=body.body,
        scheduled_for=body.scheduled_for,
        scheduled_until=body.scheduled_until,
        components=body.components,
        actor=actor,
        auto_transition=body.auto_transition,
        notify=body.notify,
    )
    return await _incident_json(svc, inc.id)


@admin.get("/incidents", operation_id="adminListIncidents")
async def admin_incidents(
    auth: Admin,
    kind: Annotated[Literal["incident", "maintenance"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[Json]:
    svc, _actor = auth
    by_id = {c.id: c for c in await svc.components()}
    found = await svc.incidents(kind=kind, limit=limit)
    return [{**views.incident(svc, i, u, c, by_id), "kind": i.kind} for i, u, c in found]


@admin.get("/incidents/{incident_id}", operation_id="adminGetIncident")
async def get_incident(auth: Admin, incident_id: str) -> Json:
    svc, _actor = auth
    return await _incident_json(svc, _key(incident_id))


class UpdateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: IncidentStatus | MaintenanceStatus | None = None
    body: Text(10_000)  # type: ignore[valid-type]
    impact: Impact | None = None
    components: list[AffectedBody] | None = Field(default=None, max_length=200)
    notify: bool = True


@admin.post("/incidents/{incident_id}/updates", operation_id="adminUpdateIncident")
async def update_incident(auth: Admin, incident_id: str, body: UpdateBody) -> Json:
    """A timestamped update: new status, text, impact or affected components."""
    svc, actor = auth
    await svc.update_incident(
        _key(incident_id),
        status=body.status,
        body=body.body,
        affected=None
        if body.components is None
        else [Affected(a.id, a.status) for a in body.components],
        impact=body.impact,
        actor=actor,
        notify=body.notify,
    )
    return await _incident_json(svc, _key(incident_id))


@admin.delete("/incidents/{incident_id}", operation_id="adminDeleteIncident")
async def delete_incident(auth: Admin, incident_id: str) -> Json:
    svc, _actor = auth
    await svc.delete_incident(_key(incident_id))
    return {"deleted": True}


def _subscriber(s: Subscriber) -> Json:
    return {
        "id": s.id,
        "email": s.email,
        "components": None if s.components is None else json.loads(s.components),
        "confirmed_at": views.iso(s.confirmedAt),
        "created_at": views.iso(s.createdAt),
    }


@admin.get("/subscribers", operation_id="adminListSubscribers")
async def subscribers(auth: Admin) -> list[Json]:
    svc, _actor = auth
    return [_subscriber(s) for s in await svc.subscribers()]


@admin.delete("/subscribers/{subscriber_id}", operation_id="adminDeleteSubscriber")
async def delete_subscriber(auth: Admin, subscriber_id: str) -> Json:
    svc, _actor = auth
    await svc.delete_subscriber(_key(subscriber_id))
    return {"deleted": True}


def _webhook(h: Webhook, *, secret: bool = False) -> Json:
    out: Json = {
        "id": h.id,
        "url": h.url,
        "components": None if h.components is None else json.loads(h.components),
        "created_at": views.iso(h.createdAt),
    }
    if secret:
        out["secret"] = h.secret  # shown once, when the webhook is made
    return out


class WebhookBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Text(2000)  # type: ignore[valid-type]
    components: list[Slug] | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _url(self) -> WebhookBody:
        if not _url(self.url):
            raise ValueError("url must be an http:// or https:// URL")
        return self


@admin.post("/webhooks", operation_id="adminAddWebhook", status_code=201)
async def add_webhook(auth: Admin, body: WebhookBody) -> Json:
    """A webhook; the answer carries its signing secret, shown this once."""
    svc, _actor = auth
    return _webhook(await svc.add_webhook(body.url, body.components), secret=True)


@admin.get("/webhooks", operation_id="adminListWebhooks")
async def webhooks(auth: Admin) -> list[Json]:
    svc, _actor = auth
    return [_webhook(h) for h in await svc.webhooks()]


@admin.delete("/webhooks/{webhook_id}", operation_id="adminDeleteWebhook")
async def delete_webhook(auth: Admin, webhook_id: str) -> Json:
    svc, _actor = auth
    await svc.delete_webhook(_key(webhook_id))
    return {"deleted": True}


def _delivery(d: WebhookDelivery) -> Json:
    return {
        "id": d.id,
        "state": d.state,
        "attempts": d.attempts,
        "next_at": views.iso(d.nextAt),
        "last_error": d.lastError,
        "created_at": views.iso(d.createdAt),
    }


@admin.get("/webhooks/{webhook_id}/deliveries", operation_id="adminWebhookDeliveries")
async def deliveries(auth: Admin, webhook_id: str) -> list[Json]:
    svc, _actor = auth
    return [_delivery(d) for d in await svc.deliveries(_key(webhook_id))]
