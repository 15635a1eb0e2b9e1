"""ESME's Participant API under ``/participant-api`` (profiles so far)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from aidpost.core.deps import ParticipantPrincipal
from aidpost.participant import schemas
from aidpost.participant.service import ParticipantService

Json = dict[str, Any]
router = APIRouter(prefix="/participant-api", tags=["participant profile"])


def _service(request: Request) -> ParticipantService:
    svc: ParticipantService = request.app.state.participant
    return svc


Svc = Annotated[ParticipantService, Depends(_service)]


@router.get("/profile", operation_id="participantGetProfile")
async def get_profile(p: ParticipantPrincipal, svc: Svc) -> Json:
    return await svc.profile(p)


@router.patch("/profile", operation_id="participantUpdateProfile")
async def update_profile(request: Request, p: ParticipantPrincipal, svc: Svc) -> Json:
    """Change the phone number (the only editable field, as in ESME)."""
    body = schemas.parse(schemas.UpdateProfile, await request.body())
    return await svc.update_profile(p, body)


@router.delete("/profile", operation_id="participantDeleteProfile")
async def delete_profile(request: Request, p: ParticipantPrincipal, svc: Svc) -> Json:
    """Delete the account; the body ``{password}`` confirms it."""
    body = schemas.parse(schemas.DeleteProfile, await request.body())
    return await svc.delete_account(p, body.password)
