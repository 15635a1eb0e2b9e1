"""The public status page: HTML without JavaScript, an Atom feed, SVG badges, and the
subscribe / confirm / unsubscribe pages.

Pages are rendered from the same views as the JSON API. Every response carries a strict
Content-Security-Policy (no scripts at all; our own stylesheet; forms post to us only).
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from importlib.resources import files
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from aidpost.core.errors import ApiError, BadRequest, NotFound
from aidpost.core.forms import read_form
from aidpost.status import views
from aidpost.status.service import StatusService, key
from aidpost.status.uptime import Tally

router = APIRouter(prefix="/statuspage", tags=["status page"], include_in_schema=True)
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
COLOURS = {
    "operational": "#1a7f37",
    "degraded_performance": "#9a6700",
    "partial_outage": "#bc4c00",
    "major_outage": "#cf222e",
    "under_maintenance": "#0969da",
    "nodata": "#8c959f",
}
_env = Environment(
    loader=PackageLoader("aidpost.status", "templates"),
    autoescape=select_autoescape(["html", "svg", "xml"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def service(request: Request) -> StatusService:
    svc: StatusService = request.app.state.status
    return svc


Service = Annotated[StatusService, Depends(service)]


def _html(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("page_name", "aidpost")
    text = _env.get_template(name).render(labels=views.LABELS, colours=COLOURS, **context)
    return HTMLResponse(text, status_code=status_code, headers=HEADERS)


def _pct(value: float | None) -> str:
    if value is None:
        return "no data"
    if value >= 99.995:
        return "100%"
    return f"{value:.2f}%".replace(".00%", "%")


_env.filters["pct"] = _pct


def _bar_colour(t: Tally) -> str:
    if t.uptime is None:
        return COLOURS["under_maintenance"] if t.maintenance > 0 else COLOURS["nodata"]
    if t.uptime >= 99.9:
        return COLOURS["operational"] if t.degraded == 0 else COLOURS["degraded_performance"]
    if t.uptime >= 99.0:
        return COLOURS["degraded_performance"]
    if t.uptime >= 95.0:
        return COLOURS["partial_outage"]
    return COLOURS["major_outage"]


def _day_title(day: dt.date, t: Tally) -> str:
    parts = [f"{day:%d %b %Y}: {_pct(t.uptime)}"]
    if t.down:
        parts.append(f"{t.down / 60:.0f} min down")
    if t.maintenance:
        parts.append(f"{t.maintenance / 60:.0f} min maintenance")
    if t.nodata and t.uptime is not None:
        parts.append(f"{t.nodata / 60:.0f} min without data")
    return ", ".join(parts)


async def _component_rows(svc: StatusService) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = await svc.cached("page-rows", lambda: _rows(svc))
    return rows


async def _rows(svc: StatusService) -> list[dict[str, Any]]:
    groups = await svc.groups()
    comps = await svc.components()
    out = []
    for g in [*groups, None]:
        members = [c for c in comps if (c.groupId if g else None) == (g.id if g else None)]
        if g is None:
            members = [c for c in comps if c.groupId not in {x.id for x in groups}]
        rows = []
        for c in members:
            if c.onlyShowIfDegraded and c.status == "operational":
                continue
            days = await svc.days(c.id, 90)
            rows.append(
                {
                    "c": c,
                    "uptime": await svc.uptimes(c.id, days),
                    "bars": [
                        {"x": i * 5, "colour": _bar_colour(t), "title": _day_title(d, t)}
                        for i, (d, t) in enumerate(days)
                    ],
                }
            )
        if rows:
            out.append({"name": g.name if g else "Other", "rows": rows})
    return out


@router.get("", response_class=HTMLResponse, operation_id="statusPage")
async def status_page(svc: Service) -> HTMLResponse:
    """The public page: overall status, incidents, components with 90 days of uptime."""
    summary = await views.summary(svc)
    history = await views.incidents(svc, kind="incident", open_only=False, limit=20)
    maint = await views.incidents(svc, kind="maintenance", open_only=False, limit=20)
    return _html(
        "page.html",
        page_name=svc.page_name,
        page=summary["page"],
        overall=summary["status"],
        open_incidents=summary["incidents"],
        maintenances=summary["scheduled_maintenances"],
        past=[i for i in history["items"] if i["status"] in ("resolved", "postmortem")][:10],
        past_maintenance=[i for i in maint["items"] if i["status"] == "completed"][:5],
        groups=await _component_rows(svc),
        components=await svc.components(),
        now=svc.clock.now(),
    )


PER_PAGE = 20
SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


@router.get("/history", response_class=HTMLResponse, operation_id="statusHistory")
async def history(svc: Service, page: int = 1) -> HTMLResponse:
    """Every incident and maintenance, latest first, 20 to a page."""
    if not 1 <= page <= 10_000:
        raise BadRequest("page must be between 1 and 10000")
    by_id = {c.id: c for c in await svc.components()}
    found = await svc.incidents(limit=PER_PAGE + 1, offset=(page - 1) * PER_PAGE)
    items = [views.incident(svc, i, u, c, by_id) for i, u, c in found[:PER_PAGE]]
    return _html(
        "history.html",
        page_name=svc.page_name,
        items=items,
        page=page,
        newer=page - 1 if page > 1 else None,
        older=page + 1 if len(found) > PER_PAGE else None,
    )


@router.get("/style.css", operation_id="statusPageStyle", include_in_schema=False)
async def style() -> Response:
    text = files("aidpost.status").joinpath("templates/style.css").read_text()
    return Response(
        text,
        media_type="text/css",
        headers={**HEADERS, "Cache-Control": "public, max-age=3600"},
    )


@router.get("/incidents/{incident_id}", response_class=HTMLResponse, operation_id="statusIncident")
async def incident_page(svc: Service, incident_id: str) -> HTMLResponse:
    try:
        inc, updates, comps = await svc.incident(key(incident_id))
    except NotFound:
        return _html("message.html", 404, title="Not found", text="There is no such incident.")
    by_id = {c.id: c for c in await svc.components()}
    view = views.incident(svc, inc, updates, comps, by_id)
    return _html("incident.html", incident=view, kind=inc.kind, page_name=svc.page_name)


@router.get(
    "/components/{component_id}", response_class=HTMLResponse, operation_id="statusComponent"
)
async def component_page(svc: Service, component_id: str) -> HTMLResponse:
    """One component: status, uptime, and its response times over 24 hours."""
    try:
        comp = await svc.component(key(component_id))
    except NotFound:
        return _html("message.html", 404, title="Not found", text="There is no such component.")
    points = await svc.response_times(comp.id)
    known = [ms for _at, ms in points if ms is not None]
    top = max(known, default=1.0) or 1.0
    chart = [
        {"x": i * 10, "y": round(100 - 95 * ms / top, 1), "at": at, "ms": ms}
        for i, (at, ms) in enumerate(points)
        if ms is not None
    ]
    return _html(
        "component.html",
        c=comp,
        page_name=svc.page_name,
        uptime=await svc.uptimes(comp.id),
        chart=chart,
        polyline=" ".join(f"{p['x']},{p['y']}" for p in chart),
        top=top,
    )


@router.post("/subscribe", response_class=HTMLResponse, operation_id="statusSubscribeForm")
async def subscribe_form(request: Request, svc: Service) -> HTMLResponse:
    """The page's subscribe form (no JavaScript): double opt-in, as the JSON API."""
    try:
        form = await read_form(request)
        email = (form.get("email") or [""])[0].strip()
        chosen = form.get("component") or None
        if chosen and not all(SLUG.fullmatch(c) for c in chosen):
            raise BadRequest("component: not a component of this page")
        if not email:
            raise BadRequest("email must not be empty")
        if len(email) > 320 or "\x00" in email:
            raise BadRequest("email must be an email")
        await svc.subscribe(email, chosen)
    except ApiError as exc:
        text = exc.message if isinstance(exc.message, str) else "; ".join(exc.message)
        return _html("message.html", 400, title="Not subscribed", text=text, back=True)
    return _html(
        "message.html",
        202,
        title="Check your inbox",
        text="We sent a link to confirm the subscription. Nothing else is sent before.",
        back=True,
    )


@router.get("/confirm/{token}", response_class=HTMLResponse, operation_id="statusConfirmPage")
async def confirm_page(token: str) -> HTMLResponse:
    """A button, not an action: mail scanners follow links, people press buttons."""
    return _html(
        "button.html",
        title="Confirm your subscription",
        text="Receive emails about incidents and maintenance of this status page?",
        action=f"/statuspage/confirm/{key(token)}",
        button="Confirm",
    )


@router.post("/confirm/{token}", response_class=HTMLResponse, operation_id="statusConfirm")
async def confirm(svc: Service, token: str) -> HTMLResponse:
    try:
        sub = await svc.confirm(key(token))
    except NotFound:
        return _html(
            "message.html",
            404,
            title="Link not valid",
            text="This confirmation link was used already or replaced by a newer one.",
            back=True,
        )
    chosen = "every component" if sub.components is None else "the components you chose"
    return _html(
        "message.html",
        200,
        title="Subscribed",
        text=f"{sub.email} will hear about incidents and maintenance of {chosen}.",
        back=True,
    )


@router.get("/unsubscribe/{token}", response_class=HTMLResponse, operation_id="statusUnsubscribe")
async def unsubscribe_page(token: str) -> HTMLResponse:
    """A button, not an action (as the confirmation)."""
    return _html(
        "button.html",
        title="Unsubscribe",
        text="Stop all emails from this status page?",
        action=f"/statuspage/unsubscribe/{key(token)}",
        button="Unsubscribe",
    )


@router.post(
    "/unsubscribe/{token}", response_class=HTMLResponse, operation_id="statusUnsubscribeOneClick"
)
async def unsubscribe(svc: Service, token: str) -> HTMLResponse:
    """One-click unsubscribe (RFC 8058 ``List-Unsubscribe-Post`` posts here too)."""
    await svc.unsubscribe(key(token))
    return _html(
        "message.html",
        200,
        title="Unsubscribed",
        text="You will get no more emails from this status page.",
        back=True,
    )


# -- feed and badges -----------------------------------------------------------------------

ATOM = "http://www.w3.org/2005/Atom"
# Characters XML 1.0 cannot carry (control characters but tab, newline, return).
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@router.get("/history.atom", operation_id="statusFeed")
async def feed(svc: Service) -> Response:
    """Incidents and maintenance, latest first, as an Atom feed."""
    found = await views.incidents(svc, kind="incident", open_only=False, limit=50)
    maint = await views.incidents(svc, kind="maintenance", open_only=False, limit=50)
    items = sorted(
        found["items"] + maint["items"], key=lambda i: str(i["updated_at"]), reverse=True
    )[:50]
    ET.register_namespace("", ATOM)
    root = ET.Element(f"{{{ATOM}}}feed")
    base = f"{svc.public_url}/statuspage"

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        el = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
        if text is not None:
            el.text = _XML_ILLEGAL.sub("\ufffd", text)
        return el

    sub(root, "id", f"{base}/history.atom")
    sub(root, "title", f"{svc.page_name} status: incidents and maintenance")
    updated = items[0]["updated_at"] if items else views.iso(svc.clock.now())
    sub(root, "updated", str(updated))
    sub(root, "link", rel="alternate", type="text/html", href=base)
    sub(root, "link", rel="self", type="application/atom+xml", href=f"{base}/history.atom")
    author = sub(root, "author")
    sub(author, "name", svc.page_name)
    for item in items:
        entry = sub(root, "entry")
        sub(entry, "id", f"tag:aidpost,status:{item['id']}")
        sub(entry, "title", f"{item['name']} ({item['status'].replace('_', ' ')})")
        sub(entry, "updated", str(item["updated_at"]))
        sub(entry, "published", str(item["created_at"]))
        sub(entry, "link", rel="alternate", type="text/html", href=item["shortlink"])
        lines = []
        if item.get("scheduled_for"):
            lines.append(f"Scheduled {item['scheduled_for']} to {item['scheduled_until']}.")
        for u in item["incident_updates"]:
            lines.append(f"{u['display_at']} {u['status']}: {u['body']}")
        sub(entry, "content", "\n".join(lines), type="text")
    body = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return Response(body, media_type="application/atom+xml", headers=HEADERS)


def _badge(label: str, value: str, colour: str) -> Response:
    # Widths from a mean glyph width: good enough for short ASCII labels.
    lw, vw = 6 * len(label) + 12, 6 * len(value) + 12
    text = _env.get_template("badge.svg").render(
        label=label, value=value, colour=colour, lw=lw, vw=vw, width=lw + vw
    )
    return Response(
        text,
        media_type="image/svg+xml",
        headers={**HEADERS, "Cache-Control": "max-age=60"},
    )


@router.get("/badge/{component_id}/status.svg", operation_id="statusBadge")
async def status_badge(svc: Service, component_id: str) -> Response:
    comp = await svc.component(key(component_id))
    return _badge(comp.name[:40], views.LABELS[comp.status].lower(), COLOURS[comp.status])


@router.get("/badge/{component_id}/uptime.svg", operation_id="statusUptimeBadge")
async def uptime_badge(svc: Service, component_id: str, window: str = "30d") -> Response:
    if window not in ("24h", "7d", "30d", "90d"):
        raise BadRequest("window must be one of 24h, 7d, 30d, 90d")
    comp = await svc.component(key(component_id))
    value = (await svc.uptimes(comp.id))[window]
    if value is None:
        colour = COLOURS["nodata"]
    elif value >= 99.9:
        colour = COLOURS["operational"]
    elif value >= 99:
        colour = COLOURS["degraded_performance"]
    else:
        colour = COLOURS["major_outage"]
    return _badge(f"uptime {window}", _pct(value), colour)
