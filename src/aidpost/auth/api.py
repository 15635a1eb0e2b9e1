"""Auth's HTTP endpoints: ESME's paths under the realm prefixes, plus JWKS under /auth-api."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from aidpost.auth.schemas import (
    OrganizerChangePassword,
    PasswordResetRequest,
    PasswordTokenUse,
    SignIn,
)
from aidpost.auth.service import AuthService
from aidpost.core.deps import OrganizerPrincipal, ParticipantPrincipal, client_address
from aidpost.participant import schemas as participant_schemas
from aidpost.participant.schemas import parse


def service(request: Request) -> AuthService:
    svc: AuthService = request.app.state.auth
    return svc


organizer_router = APIRouter(prefix="/organizer-api", tags=["organizer auth"])
participant_router = APIRouter(prefix="/participant-api", tags=["participant auth"])
auth_router = APIRouter(prefix="/auth-api", tags=["auth"])


@organizer_router.post("/auth/sign-in", operation_id="organizerSignIn", status_code=200)
async def organizer_sign_in(body: SignIn, request: Request) -> dict[str, Any]:
    """Sign in with email and password; returns the user and a token ``organizer:<jwt>``."""
    return await service(request).sign_in(
        "organizer", body.email, body.password, client_address(request)
    )


@organizer_router.post("/auth/sign-out", operation_id="organizerSignOut", status_code=200)
async def organizer_sign_out(principal: OrganizerPrincipal, request: Request) -> Response:
    """Revoke every token of the caller issued until now, in every component."""
    await service(request).sign_out(principal)
    return Response(status_code=200)


@organizer_router.patch(
    "/profile/change-password", operation_id="organizerChangePassword", status_code=200
)
async def organizer_change_password(
    body: OrganizerChangePassword, principal: OrganizerPrincipal, request: Request
) -> dict[str, Any]:
    """Change the password (the old one must be right); earlier tokens stop working."""
    svc = service(request)
    await svc.change_password(principal, body.oldPassword, body.newPassword)
    return await svc.public_user(principal)


RESET_SENT = {
    "message": "if an account uses this address, a link to reset its password is on its way"
}
PASSWORD_SET = {"message": "password set; sign in with it"}


@organizer_router.post(
    "/auth/password-reset", operation_id="organizerPasswordReset", status_code=200
)
async def organizer_password_reset(body: PasswordResetRequest, request: Request) -> Any:
    """Email a single-use link (valid 2 hours) to reset the password. The answer is the same
    whether or not the address has an account."""
    await service(request).request_reset("organizer", body.email, client_address(request))
    return RESET_SENT


@organizer_router.post(
    "/auth/password-reset/confirm", operation_id="organizerPasswordSet", status_code=200
)
async def organizer_password_set(body: PasswordTokenUse, request: Request) -> Any:
    """Set the password with the token of a reset link or of a new account's setup link;
    every earlier session of the account ends."""
    await service(request).set_password_with_token("organizer", body.token, body.password)
    return PASSWORD_SET


@participant_router.post(
    "/auth/password-reset", operation_id="participantPasswordReset", status_code=200
)
async def participant_password_reset(request: Request) -> Any:
    body = parse(participant_schemas.PasswordResetRequest, await request.body())
    await service(request).request_reset("participant", body.email, client_address(request))
    return RESET_SENT


@participant_router.post(
    "/auth/password-reset/confirm", operation_id="participantPasswordSet", status_code=200
)
async def participant_password_set(request: Request) -> Any:
    body = parse(participant_schemas.PasswordTokenUse, await request.body())
    await service(request).set_password_with_token("participant", body.token, body.password)
    return PASSWORD_SET


@participant_router.post("/auth/sign-up", operation_id="participantSignUp", status_code=201)
async def participant_sign_up(request: Request) -> dict[str, Any]:
    """Create a participant account; returns the user and a token ``participant:<jwt>``."""
    body = parse(participant_schemas.SignUp, await request.body())
    return await service(request).sign_up_participant(body.email, body.password, body.phoneNumber)


@participant_router.post("/auth/sign-in", operation_id="participantSignIn", status_code=200)
async def participant_sign_in(request: Request) -> dict[str, Any]:
    body = parse(participant_schemas.SignIn, await request.body())
    return await service(request).sign_in(
        "participant", body.email, body.password, client_address(request)
    )


@participant_router.post("/auth/sign-out", operation_id="participantSignOut", status_code=200)
async def participant_sign_out(principal: ParticipantPrincipal, request: Request) -> Response:
    await service(request).sign_out(principal)
    return Response(status_code=200, media_type="application/json")


@participant_router.patch(
    "/profile/change-password", operation_id="participantChangePassword", status_code=200
)
async def participant_change_password(
    principal: ParticipantPrincipal, request: Request
) -> dict[str, Any]:
    body = parse(participant_schemas.ChangePassword, await request.body())
    svc = service(request)
    await svc.change_password(principal, body.oldPassword, body.newPassword)
    return await svc.public_user(principal)


@auth_router.get("/.well-known/jwks.json", operation_id="jwks")
async def jwks(request: Request) -> dict[str, Any]:
    """Public keys that verify every token auth issued and that has not expired."""
    return service(request).keys.jwks()
