"""JSON views of organizer entities, field for field as ESME's API returns them."""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

from aidpost.organizer.models import Agency, Changelog, Comment, Contact, Event, Issue, User


def iso(value: dt.datetime | None) -> str | None:
    """JavaScript's ``toISOString``: UTC, milliseconds, ``Z``."""
    if value is None:
        return None
    return (
        value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{value.microsecond // 1000:03d}Z"
    )


def user(u: User) -> dict[str, Any]:
    return {
        "id": u.id,
        "email": u.email,
        "firstName": u.firstName,
        "lastName": u.lastName,
        "phoneNumber": u.phoneNumber,
        "timeCreated": iso(u.timeCreated),
        "timeSignOut": iso(u.timeSignOut),
        "role": u.role,
        "agencyId": u.agencyId,
    }


def agency(a: Agency) -> dict[str, Any]:
    return {
        "id": a.id,
        "name": a.name,
        "address": a.address,
        "website": a.website,
        "approved": a.approved,
    }


class EventLike(Protocol):
    """An event as the organizer stores it, or as another component's read model does."""

    id: int
    name: str
    description: str
    address: str
    lat: float
    lng: float
    timeStart: dt.datetime
    timeEnd: dt.datetime
    agencyId: int


def event(e: EventLike) -> dict[str, Any]:
    return {
        "id": e.id,
        "name": e.name,
        "description": e.description,
        "address": e.address,
        "lat": e.lat,
        "lng": e.lng,
        "timeStart": iso(e.timeStart),
        "timeEnd": iso(e.timeEnd),
        "agencyId": e.agencyId,
    }


def contact(c: Contact) -> dict[str, Any]:
    return {
        "id": c.id,
        "firstName": c.firstName,
        "lastName": c.lastName,
        "email": c.email,
        "phoneNumber": c.phoneNumber,
        "additionalNotes": c.additionalNotes,
        "eventId": c.eventId,
        "agencyId": c.agencyId,
    }


def issue(i: Issue) -> dict[str, Any]:
    return {
        "id": i.id,
        "name": i.name,
        "description": i.description,
        "status": i.status,
        "priority": i.priority,
        "timeCreated": iso(i.timeCreated),
        "timeClosed": iso(i.timeClosed),
        "authorId": i.authorId,
        "eventId": i.eventId,
        "agencyId": i.agencyId,
    }


def comment(c: Comment) -> dict[str, Any]:
    return {
        "id": c.id,
        "content": c.content,
        "timeCreated": iso(c.timeCreated),
        "authorId": c.authorId,
        "issueId": c.issueId,
        "agencyId": c.agencyId,
    }


def changelog(c: Changelog) -> dict[str, Any]:
    return {
        "id": c.id,
        "entityId": c.entityId,
        "entityClass": c.entityClass,
        "type": c.type,
        "changedAt": iso(c.changedAt),
        "valueAfter": c.valueAfter,
        "userId": c.userId,
        "agencyId": c.agencyId,
    }


VIEWS: dict[type, Any] = {
    User: user,
    Agency: agency,
    Event: event,
    Contact: contact,
    Issue: issue,
    Comment: comment,
}


def of(entity: object) -> dict[str, Any]:
    result: dict[str, Any] = VIEWS[type(entity)](entity)
    return result
