"""ESME's chat and message JSON (ids are strings; ``ended``/``fromOrganizer`` are 0/1), plus
aidpost's ``seq``/``lastSeq`` that resuming clients use (ESME's clients ignore them)."""

from __future__ import annotations

import json
from typing import Any

from aidpost.messenger.models import Chat, Message, NewMessage
from aidpost.organizer.views import iso

ZERO_TIME = "0001-01-01T00:00:00Z"  # ESME's timeEnd of a chat (it never set one)


def chat(c: Chat, participant: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": c.id,
        "agencyId": c.agencyId,
        "eventId": c.eventId,
        "organizerId": c.organizerId,
        "participantId": c.participantId,
        "ended": c.ended,
    }
    if c.latStart is not None and c.lngStart is not None:
        out["latStart"], out["lngStart"] = c.latStart, c.lngStart
    out["timeStart"] = iso(c.timeStart)
    out["timeEnd"] = iso(c.timeEnd) if c.timeEnd else ZERO_TIME
    out["lastSeq"] = c.lastSeq
    if participant is not None:
        out["participant"] = participant
    return out


def message(m: Message | NewMessage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": m.id,
        "chatId": m.chatId,
        "authorId": m.authorId,
        "fromOrganizer": m.fromOrganizer,
        "content": m.content,
        "timeSent": iso(m.timeSent),
    }
    if m.lat is not None and m.lng is not None:
        out["lat"], out["lng"] = m.lat, m.lng
    out["seq"] = m.seq
    out["clientId"] = m.clientId
    return out


def frame(kind: str, payload: Any) -> str:
    """One server frame, encoded once however many sockets it goes to."""
    return json.dumps({"type": kind, "payload": payload}, separators=(",", ":"))


def participant_details(user: dict[str, Any] | None) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"id": user["id"], "email": user["email"], "phoneNumber": user["phoneNumber"]}
