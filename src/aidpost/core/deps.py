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
        try:
            return await verifier_of(request).verify(request.headers.get("authorization"), realm)
        except Unauthorized:
            if realm == "organizer":
                # ESME's organizer guards answer a missing or bad token with 403.
                raise Forbidden() from None
            raise

    return _principal


OrganizerPrincipal = Annotated[Principal, Depends(principal_dependency("organizer"))]
ParticipantPrincipal = Annotated[Principal, Depends(principal_dependency("participant"))]


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
