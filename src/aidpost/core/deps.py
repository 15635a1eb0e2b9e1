"""FastAPI dependencies shared by components: the caller's token, the client's address."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from aidpost.core.errors import Forbidden, Unauthorized
from aidpost.core.tokens import Principal, Realm, TokenVerifier


def verifier_of(request: Request) -> TokenVerifier:
    verifier: TokenVerifier = request.app.state.runtime.verifier
    return verifier


def principal_dependency(realm: Realm) -> Callable[[Request], Awaitable[Principal]]:
    async def _principal(request: Request) -> Principal:
        header = request.headers.get("authorization")
        try:
            return await verifier_of(request).verify(header, realm)
        except Unauthorized:
            if realm == "organizer":
                # ESME's organizer guards answer a missing or bad token with 403.
                raise Forbidden() from None
            # ESME's participant API: 401 naming what was wrong.
            scheme, _, value = (header or "").partition(" ")
            if scheme != "Bearer" or not value:
                raise Unauthorized("invalid authorization header") from None
            raise Unauthorized("invalid token") from None

    return _principal


OrganizerPrincipal = Annotated[Principal, Depends(principal_dependency("organizer"))]
ParticipantPrincipal = Annotated[Principal, Depends(principal_dependency("participant"))]


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
