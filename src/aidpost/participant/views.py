"""JSON views of participant entities, as ESME's Participant API returns them."""

from __future__ import annotations

from typing import Any

from aidpost.organizer.views import event, iso
from aidpost.participant.models import Participant

__all__ = ["event", "participant"]


def participant(p: Participant) -> dict[str, Any]:
    return {
        "id": p.id,
        "email": p.email,
        "phoneNumber": p.phoneNumber,
        "timeCreated": iso(p.timeCreated),
        "timeSignOut": iso(p.timeSignOut),
    }
