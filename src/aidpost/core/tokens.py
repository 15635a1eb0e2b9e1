"""Token verification, done locally by every component.

Tokens are EdDSA (Ed25519) JWTs with a ``kid`` header, issued only by the auth component.
Other components verify them against auth's public keys (JWKS), cached and refreshed when a
token names an unknown ``kid``. ESME's header forms ``Bearer organizer:<jwt>`` and
``Bearer participant:<jwt>`` are accepted. A token is refused when it was issued before
its user's latest revocation (sign-out, password change), which reaches every component
over the bus stream ``auth.revocations``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import httpx
import jwt
from jwt import PyJWK

from aidpost.core.bus import Bus, Event, Subscription
from aidpost.core.errors import Unauthorized

Realm = Literal["organizer", "participant"]
REALMS: tuple[Realm, ...] = ("organizer", "participant")
REVOCATIONS_STREAM = "auth.revocations"
ALGORITHM = "EdDSA"
MAX_TOKEN_LENGTH = 4096


@dataclass(frozen=True)
class Principal:
    realm: Realm
    user_id: int
    issued_ms: int
    token: str


class KeySource(Protocol):
    async def public_key(self, kid: str) -> Any | None: ...


class JwksKeySource:
    """Public keys from a JWKS URL; refetched on an unknown kid, at most once a second."""

    def __init__(self, url: str, client: httpx.AsyncClient | None = None) -> None:
        self.url = url
        self._client = client or httpx.AsyncClient(timeout=2.0)
        self._keys: dict[str, Any] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def public_key(self, kid: str) -> Any | None:
        if kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            if kid not in self._keys and time.monotonic() - self._fetched_at > 1.0:
                # Count failed fetches too: an unreachable auth must not get one per request.
                self._fetched_at = time.monotonic()
                response = await self._client.get(self.url)
                response.raise_for_status()
                self._keys = {
                    k["kid"]: PyJWK(k).key for k in response.json().get("keys", []) if "kid" in k
                }
                self._fetched_at = time.monotonic()
        return self._keys.get(kid)


class CallableKeySource:
    """Public keys from an in-process function (the one-process mode)."""

    def __init__(self, lookup: Callable[[str], Awaitable[Any | None]]) -> None:
        self._lookup = lookup

    async def public_key(self, kid: str) -> Any | None:
        return await self._lookup(kid)


class Revocations:
    """Latest revocation time per user, kept current from the bus."""

    def __init__(self) -> None:
        self._not_before: dict[tuple[str, int], int] = {}

    def apply(self, realm: str, user_id: int, not_before_ms: int) -> None:
        key = (realm, user_id)
        if not_before_ms > self._not_before.get(key, 0):
            self._not_before[key] = not_before_ms

    def is_revoked(self, realm: str, user_id: int, issued_ms: int) -> bool:
        return issued_ms < self._not_before.get((realm, user_id), 0)

    async def handle(self, event: Event) -> None:
        if event.type == "auth.revoked.v1":
            d = event.data
            self.apply(str(d["realm"]), int(d["userId"]), int(d["notBeforeMs"]))

    def subscription(self, bus: Bus, instance: str) -> Subscription:
        # Every process reads the whole stream in its own group: each needs every revocation.
        return Subscription(
            bus,
            REVOCATIONS_STREAM,
            f"revocations-{instance}",
            self.handle,
            block_ms=250,
            ephemeral=True,
        )


def split_authorization(header: str | None) -> tuple[str | None, str]:
    """``Bearer organizer:<jwt>`` -> ("organizer", jwt); ``Bearer <jwt>`` -> (None, jwt)."""
    if not header:
        raise Unauthorized()
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value:
        raise Unauthorized()
    value = value.strip()
    prefix, sep, rest = value.partition(":")
    if sep and prefix in REALMS:
        return prefix, rest
    return None, value


class TokenVerifier:
    """Checks signature and claims once per token, then remembers the result until the
    token expires (bounded); revocations are looked at on every call."""

    CACHE_SIZE = 10_000

    def __init__(self, keys: KeySource, revocations: Revocations, issuer: str) -> None:
        self.keys = keys
        self.revocations = revocations
        self.issuer = issuer
        self._verified: OrderedDict[tuple[str, str], tuple[Principal, float]] = OrderedDict()

    async def verify(self, authorization: str | None, realm: Realm) -> Principal:
        """Return who the header's token names, or raise ``Unauthorized``."""
        prefix, token = split_authorization(authorization)
        if (prefix is not None and prefix != realm) or len(token) > MAX_TOKEN_LENGTH:
            raise Unauthorized()
        cached = self._verified.get((realm, token))
        if cached is not None and cached[1] > time.time():
            principal = cached[0]
        else:
            principal, expires = await self._check(token, realm)
            self._verified[(realm, token)] = (principal, expires)
            if len(self._verified) > self.CACHE_SIZE:
                self._verified.popitem(last=False)
        if self.revocations.is_revoked(realm, principal.user_id, principal.issued_ms):
            raise Unauthorized()
        return principal

    async def _check(self, token: str, realm: Realm) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
            kid = header.get("kid")
            if not isinstance(kid, str) or header.get("alg") != ALGORITHM:
                raise Unauthorized()
            key = await self.keys.public_key(kid)
            if key is None:
                raise Unauthorized()
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=realm,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
            user_id = int(claims["sub"])
            issued_ms = int(claims.get("tms", int(claims["iat"]) * 1000))
            expires = float(claims["exp"])
        except Unauthorized:
            raise
        except (jwt.PyJWTError, ValueError, KeyError, TypeError, httpx.HTTPError) as exc:
            raise Unauthorized() from exc
        return Principal(realm=realm, user_id=user_id, issued_ms=issued_ms, token=token), expires


SignOutHandler = Callable[[str, int, dt.datetime], Awaitable[None]]


def sign_out_subscription(
    bus: Bus, realm: Realm, group: str, apply: SignOutHandler
) -> Subscription:
    """A realm's durable consumer of revocations: ``apply(event_id, user_id, when)`` keeps
    the realm's ``timeSignOut`` in step (idempotently, by event id)."""

    async def handle(event: Event) -> None:
        if event.type != "auth.revoked.v1" or event.data.get("realm") != realm:
            return
        when = dt.datetime.fromtimestamp(int(event.data["notBeforeMs"]) / 1000, dt.UTC)
        await apply(event.id, int(event.data["userId"]), when)

    return Subscription(bus, REVOCATIONS_STREAM, group, handle)
