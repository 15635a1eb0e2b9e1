"""Auth's HTTP endpoints: ESME's paths under the realm prefixes, plus JWKS under /auth-api."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from aidpost.auth.schemas import OrganizerChangePassword, SignIn
from aidpost.auth.service import AuthService
from aidpost.core.deps import OrganizerPrincipal, client_address


def service(request: Request) -> AuthService:
    svc: AuthService = request.app.state.auth
    return svc


organizer_router = APIRouter(prefix="/organizer-api", tags=["organizer auth"])
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


@auth_router.get("/.well-known/jwks.json", operation_id="jwks")
async def jwks(request: Request) -> dict[str, Any]:
    """Public keys that verify every token auth issued and that has not expired."""
    return service(request).keys.jwks()
