"""JSON views of participant entities, as ESME's Participant API returns them."""

from __future__ import annotations

from typing import Any

from aidpost.organizer.views import iso
from aidpost.participant.models import EventView, Participant


def participant(p: Participant) -> dict[str, Any]:
    return {
        "id": p.id,
        "email": p.email,
        "phoneNumber": p.phoneNumber,
        "timeCreated": iso(p.timeCreated),
        "timeSignOut": iso(p.timeSignOut),
    }


def event(e: EventView) -> dict[str, Any]:
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
