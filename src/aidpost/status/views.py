"""What the public reads, in the shape of Atlassian Statuspage's API v2 (``summary.json``,
``status.json``, ``components.json``, ``incidents.json``, ``scheduled-maintenances.json``),
so that tools that read a Statuspage page read this one. The HTML page, the feed and the
badges are drawn from the same views."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from aidpost.status.models import Incident, IncidentComponent, IncidentUpdate, StatusComponent
from aidpost.status.service import StatusService

Json = dict[str, Any]
PAGE_ID = "aidpost"
INDICATORS = {
    "operational": ("none", "All Systems Operational"),
    "degraded_performance": ("minor", "Minor Service Outage"),
    "partial_outage": ("minor", "Partial System Outage"),
    "major_outage": ("major", "Major System Outage"),
    "under_maintenance": ("maintenance", "Service Under Maintenance"),
}
LABELS = {
    "operational": "Operational",
    "degraded_performance": "Degraded performance",
    "partial_outage": "Partial outage",
    "major_outage": "Major outage",
    "under_maintenance": "Under maintenance",
}


def iso(value: dt.datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def page(svc: StatusService, updated: dt.datetime) -> Json:
    return {
        "id": PAGE_ID,
        "name": svc.page_name,
        "url": f"{svc.public_url}/statuspage",
        "time_zone": "Etc/UTC",
        "updated_at": iso(updated),
    }


async def components(svc: StatusService) -> list[Json]:
    groups = await svc.groups()
    comps = await svc.components()
    out: list[Json] = []
    for pos, g in enumerate(groups):
        members = [c for c in comps if c.groupId == g.id]
        out.append(
            {
                "id": g.id,
                "name": g.name,
                "status": _group_status([c.status for c in members]),
                "created_at": iso(g.createdAt),
                "updated_at": iso(g.updatedAt),
                "position": pos * 1000,
                "description": None,
                "showcase": False,
                "start_date": None,
                "group_id": None,
                "page_id": PAGE_ID,
                "group": True,
                "only_show_if_degraded": False,
                "components": [c.id for c in members],
            }
        )
    for c in comps:
        out.append(component(c, groups_position={g.id: i for i, g in enumerate(groups)}))
    return out


def component(c: StatusComponent, groups_position: dict[str, int] | None = None) -> Json:
    base = (groups_position or {}).get(c.groupId or "", 0) * 1000 + 1
    return {
        "id": c.id,
        "name": c.name,
        "status": c.status,
        "created_at": iso(c.createdAt),
        "updated_at": iso(c.updatedAt),
        "position": base + c.position,
        "description": c.description,
        "showcase": True,
        "start_date": c.createdAt.date().isoformat(),
        "group_id": c.groupId,
        "page_id": PAGE_ID,
        "group": False,
        "only_show_if_degraded": c.onlyShowIfDegraded,
    }


def _group_status(statuses: list[str]) -> str:
    order = ["operational", "under_maintenance", "degraded_performance"]
    order += ["partial_outage", "major_outage"]
    if not statuses:
        return "operational"
    down = [s for s in statuses if s == "major_outage"]
    if down and len(down) < len(statuses):
        return "partial_outage"
    return max(statuses, key=order.index)


def incident(
    svc: StatusService,
    inc: Incident,
    updates: list[IncidentUpdate],
    comps: list[IncidentComponent],
    by_id: dict[str, StatusComponent],
) -> Json:
    body: Json = {
        "id": inc.id,
        "name": inc.name,
        "status": inc.status,
        "created_at": iso(inc.createdAt),
        "updated_at": iso(inc.updatedAt),
        "monitoring_at": iso(inc.monitoringAt),
        "resolved_at": iso(inc.resolvedAt),
        "impact": inc.impact,
        "shortlink": svc.incident_url(inc),
        "started_at": iso(inc.startedAt),
        "page_id": PAGE_ID,
        "incident_updates": [
            {
                "id": u.id,
                "status": u.status,
                "body": u.body,
                "incident_id": inc.id,
                "created_at": iso(u.createdAt),
                "updated_at": iso(u.createdAt),
                "display_at": iso(u.createdAt),
                "affected_components": json.loads(u.affected) or None,
                "deliver_notifications": True,
                "custom_tweet": None,
                "tweet_id": None,
            }
            for u in updates
        ],
        "components": [component(by_id[c.componentId]) for c in comps if c.componentId in by_id],
    }
    if inc.kind == "maintenance":
        body["scheduled_for"] = iso(inc.scheduledFor)
        body["scheduled_until"] = iso(inc.scheduledUntil)
    return body


def status(component_statuses: list[str], maintenance_now: bool) -> Json:
    worst = "operational"
    rank = ["operational", "degraded_performance", "partial_outage", "major_outage"]
    for s in component_statuses:
        if s in rank and rank.index(s) > rank.index(worst):
            worst = s
    if worst == "operational" and maintenance_now:
        worst = "under_maintenance"
    indicator, description = INDICATORS[worst]
    return {"indicator": indicator, "description": description}


async def incidents(svc: StatusService, *, kind: str, open_only: bool, limit: int = 50) -> Json:
    by_id = {c.id: c for c in await svc.components()}
    found = await svc.incidents(kind=kind, open_only=open_only, limit=limit)
    return {
        "items": [incident(svc, i, u, c, by_id) for i, u, c in found],
        "updated": max((i.updatedAt for i, _u, _c in found), default=None),
    }


async def summary(svc: StatusService) -> Json:
    """The summary, computed at most once per ``cache_seconds`` (see the service)."""
    result: Json = await svc.cached("summary", lambda: _summary(svc))
    return result


async def _summary(svc: StatusService) -> Json:
    comps = await svc.components()
    open_incidents = await incidents(svc, kind="incident", open_only=True)
    maintenances = await incidents(svc, kind="maintenance", open_only=True)
    in_progress = any(m["status"] in ("in_progress", "verifying") for m in maintenances["items"])
    updated = max(
        [c.updatedAt for c in comps]
        + [x for x in (open_incidents["updated"], maintenances["updated"]) if x is not None],
        default=svc.clock.now(),
    )
    return {
        "page": page(svc, updated),
        "components": await components(svc),
        "incidents": open_incidents["items"],
        "scheduled_maintenances": maintenances["items"],
        "status": status([c.status for c in comps], in_progress),
    }
