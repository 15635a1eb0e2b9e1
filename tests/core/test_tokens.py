"""Token verification against real keys from auth's KeyStore on a temporary SQLite database."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from aidpost.auth.keys import KeyStore
from aidpost.core.clock import SystemClock
from aidpost.core.db import Database
from aidpost.core.errors import Unauthorized
from aidpost.core.migrate import upgrade
from aidpost.core.tokens import (
    MAX_TOKEN_LENGTH,
    CallableKeySource,
    JwksKeySource,
    Revocations,
    TokenVerifier,
    split_authorization,
)

ISSUER = "aidpost-test"
TTL = 3600


@pytest.fixture
async def auth_db(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}")
    try:
        await upgrade(db, "auth")
        yield db
    finally:
        await db.dispose()


@pytest.fixture
async def store(auth_db: Database) -> KeyStore:
    keys = KeyStore(auth_db, SystemClock(), TTL, ISSUER)
    await keys.ensure_active()
    return keys


@pytest.fixture
def revocations() -> Revocations:
    return Revocations()


@pytest.fixture
def verifier(store: KeyStore, revocations: Revocations) -> TokenVerifier:
    return TokenVerifier(CallableKeySource(store.public_key), revocations, ISSUER)


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def refused(
    verifier: TokenVerifier,
    header: str | None,
    realm: Any = "organizer",
    because: type[BaseException] | None = None,
) -> None:
    """The header is refused; with ``because``, for that PyJWT reason and no other."""
    with pytest.raises(Unauthorized) as info:
        await verifier.verify(header, realm)
    if because is not None:
        assert isinstance(info.value.__cause__, because), repr(info.value.__cause__)


def sign(claims_: dict[str, Any], key: Any, kid: str) -> str:
    return jwt.encode(claims_, key, algorithm="EdDSA", headers={"kid": kid})


def fresh_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


async def test_organizer_token_verifies_with_and_without_realm_prefix(
    store: KeyStore, verifier: TokenVerifier
) -> None:
    token = store.issue("organizer", 7)

    for header in (f"Bearer organizer:{token}", f"Bearer {token}", f"bearer  {token} "):
        principal = await verifier.verify(header, "organizer")
        assert principal.realm == "organizer"
        assert principal.user_id == 7
        assert principal.token == token
        assert principal.issued_ms == claims(token)["tms"]


async def test_participant_token_verifies_for_participant(
    store: KeyStore, verifier: TokenVerifier
) -> None:
    token = store.issue("participant", 9)
    principal = await verifier.verify(f"Bearer participant:{token}", "participant")
    assert (principal.realm, principal.user_id) == ("participant", 9)


async def test_realm_prefix_mismatch_is_refused(store: KeyStore, verifier: TokenVerifier) -> None:
    token = store.issue("organizer", 7)
    await refused(verifier, f"Bearer participant:{token}", "organizer")


async def test_audience_mismatch_is_refused(store: KeyStore, verifier: TokenVerifier) -> None:
    bad_aud = jwt.InvalidAudienceError
    await refused(verifier, f"Bearer {store.issue('participant', 7)}", "organizer", bad_aud)
    await refused(
        verifier, f"Bearer organizer:{store.issue('participant', 7)}", "organizer", bad_aud
    )
    await refused(verifier, f"Bearer {store.issue('organizer', 7)}", "participant", bad_aud)


async def test_other_issuer_is_refused(store: KeyStore) -> None:
    other = TokenVerifier(CallableKeySource(store.public_key), Revocations(), "someone-else")
    await refused(other, f"Bearer {store.issue('organizer', 7)}", because=jwt.InvalidIssuerError)


async def test_tampered_token_is_refused(store: KeyStore, verifier: TokenVerifier) -> None:
    token = store.issue("organizer", 7)
    head, body, sig = token.split(".")

    # A flipped character in the middle of the signature (the last one may only carry padding).
    middle = len(sig) // 2
    flipped = sig[:middle] + ("A" if sig[middle] != "A" else "B") + sig[middle + 1 :]
    await refused(verifier, f"Bearer {head}.{body}.{flipped}", because=jwt.InvalidSignatureError)

    # A payload naming someone else under the original signature.
    forged = dict(claims(token), sub="1")
    forged_body = b64(json.dumps(forged).encode())
    await refused(verifier, f"Bearer {head}.{forged_body}.{sig}", because=jwt.InvalidSignatureError)

    # A signature made by a different key under the store's kid.
    foreign = sign(claims(token), fresh_key(), jwt.get_unverified_header(token)["kid"])
    await refused(verifier, f"Bearer {foreign}", because=jwt.InvalidSignatureError)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Token abc",
        "Bearer garbage",
        "Bearer a.b.c",
        "Bearer organizer:",
        "Bearer " + "x" * 100,
    ],
)
async def test_missing_or_malformed_header_is_refused(
    verifier: TokenVerifier, header: str | None
) -> None:
    await refused(verifier, header)


async def test_basic_scheme_with_valid_token_is_refused(
    store: KeyStore, verifier: TokenVerifier
) -> None:
    await refused(verifier, f"Basic {store.issue('organizer', 7)}")


async def test_token_longer_than_limit_is_refused(store: KeyStore, verifier: TokenVerifier) -> None:
    """Refused for its length alone: the same key signs a short token that verifies."""
    token = store.issue("organizer", 7)
    assert store._active is not None
    kid, key = store._active

    def padded(n: int) -> str:
        return sign(dict(claims(token), pad="p" * n), key, kid)

    n = (MAX_TOKEN_LENGTH - len(token)) * 3 // 4 - 10
    while len(padded(n + 1)) <= MAX_TOKEN_LENGTH:
        n += 1
    fits, too_long = padded(n), padded(n + 1)  # the longest that fits, and one byte more
    assert len(fits) <= MAX_TOKEN_LENGTH < len(too_long) <= MAX_TOKEN_LENGTH + 2
    assert (await verifier.verify(f"Bearer {fits}", "organizer")).user_id == 7
    await refused(verifier, f"Bearer {too_long}")
    await refused(verifier, f"Bearer organizer:{too_long}")
    await refused(verifier, "Bearer " + "a" * (MAX_TOKEN_LENGTH + 1))


async def test_hs256_token_is_refused(store: KeyStore, verifier: TokenVerifier) -> None:
    """Algorithm confusion: an HMAC token under the store's kid, keyed with public material."""
    token = store.issue("organizer", 7)
    kid = jwt.get_unverified_header(token)["kid"]
    public_x = store.jwks()["keys"][0]["x"]
    for secret in ("some-shared-secret-at-least-32-bytes!", public_x):
        forged = jwt.encode(claims(token), secret, algorithm="HS256", headers={"kid": kid})
        await refused(verifier, f"Bearer {forged}")
        await refused(verifier, f"Bearer organizer:{forged}")


async def test_unsigned_token_is_refused(store: KeyStore, verifier: TokenVerifier) -> None:
    token = store.issue("organizer", 7)
    kid = jwt.get_unverified_header(token)["kid"]
    head = b64(json.dumps({"alg": "none", "kid": kid, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims(token)).encode())
    await refused(verifier, f"Bearer {head}.{body}.")
    # Claiming EdDSA but carrying no signature at all.
    head = b64(json.dumps({"alg": "EdDSA", "kid": kid, "typ": "JWT"}).encode())
    await refused(verifier, f"Bearer {head}.{body}.")


async def test_unknown_kid_is_refused(store: KeyStore, verifier: TokenVerifier) -> None:
    token = store.issue("organizer", 7)
    await refused(verifier, f"Bearer {sign(claims(token), fresh_key(), 'kid-nobody-knows')}")
    no_kid = jwt.encode(claims(token), fresh_key(), algorithm="EdDSA")
    await refused(verifier, f"Bearer {no_kid}")
    assert (await verifier.verify(f"Bearer {token}", "organizer")).user_id == 7


async def test_expired_token_is_refused(auth_db: Database, verifier: TokenVerifier) -> None:
    expired_store = KeyStore(auth_db, SystemClock(), -10, ISSUER)
    await expired_store.ensure_active()
    token = expired_store.issue("organizer", 7)
    assert claims(token)["exp"] < claims(token)["iat"]
    await refused(verifier, f"Bearer {token}", because=jwt.ExpiredSignatureError)


async def test_token_issued_before_revocation_is_refused(
    store: KeyStore, verifier: TokenVerifier, revocations: Revocations
) -> None:
    token = store.issue("organizer", 7)
    other_user = store.issue("organizer", 8)
    tms = claims(token)["tms"]

    revocations.apply("organizer", 7, tms)  # issued exactly at not_before: still valid
    assert (await verifier.verify(f"Bearer {token}", "organizer")).user_id == 7

    revocations.apply("organizer", 7, tms + 1)
    await refused(verifier, f"Bearer {token}")
    await refused(verifier, f"Bearer organizer:{token}")
    # Only that user in that realm.
    assert (await verifier.verify(f"Bearer {other_user}", "organizer")).user_id == 8
    participant = store.issue("participant", 7)
    assert (await verifier.verify(f"Bearer {participant}", "participant")).user_id == 7

    # An older revocation never moves the line back.
    revocations.apply("organizer", 7, tms - 60_000)
    await refused(verifier, f"Bearer {token}")


async def test_revocation_arrives_as_event(
    store: KeyStore, verifier: TokenVerifier, revocations: Revocations
) -> None:
    from aidpost.core.bus import Event

    token = store.issue("organizer", 7)
    not_before = claims(token)["tms"] + 1
    await revocations.handle(Event("something.else.v1", {"realm": "organizer", "userId": 7}))
    assert (await verifier.verify(f"Bearer {token}", "organizer")).user_id == 7
    data = {"realm": "organizer", "userId": 7, "notBeforeMs": not_before}
    await revocations.handle(Event("auth.revoked.v1", data))
    await refused(verifier, f"Bearer {token}")


async def test_rotation_keeps_old_tokens_valid_and_signs_with_new_kid(
    store: KeyStore, verifier: TokenVerifier
) -> None:
    old = store.issue("organizer", 7)
    old_kid = jwt.get_unverified_header(old)["kid"]

    new_kid = await store.rotate()
    new = store.issue("organizer", 8)

    assert new_kid != old_kid
    assert jwt.get_unverified_header(new)["kid"] == new_kid
    assert {k["kid"] for k in store.jwks()["keys"]} == {old_kid, new_kid}
    assert (await verifier.verify(f"Bearer {old}", "organizer")).user_id == 7
    assert (await verifier.verify(f"Bearer {new}", "organizer")).user_id == 8


async def test_rotation_in_another_store_instance_is_found(
    auth_db: Database, store: KeyStore, verifier: TokenVerifier
) -> None:
    """Another auth replica rotates; this one's key lookup reloads on the unknown kid, at most
    once a second (made-up kids must not cost a query each)."""
    replica = KeyStore(auth_db, SystemClock(), TTL, ISSUER)
    await replica.load()
    await replica.rotate()
    token = replica.issue("organizer", 5)
    with pytest.raises(Unauthorized):
        await verifier.verify(f"Bearer {token}", "organizer")  # store loaded < 1 s ago
    await asyncio.sleep(1.05)
    assert (await verifier.verify(f"Bearer {token}", "organizer")).user_id == 5


def test_split_authorization() -> None:
    assert split_authorization("Bearer organizer:abc") == ("organizer", "abc")
    assert split_authorization("Bearer participant:abc") == ("participant", "abc")
    assert split_authorization("Bearer abc") == (None, "abc")
    assert split_authorization("BEARER abc") == (None, "abc")
    assert split_authorization("Bearer admin:abc") == (None, "admin:abc")
    for bad in (None, "", "Bearer", "Basic abc"):
        with pytest.raises(Unauthorized):
            split_authorization(bad)


def jwks_app(store: KeyStore, hits: list[int]) -> Starlette:
    async def jwks(request: Request) -> JSONResponse:
        hits.append(1)
        return JSONResponse(store.jwks())

    return Starlette(routes=[Route("/auth-api/.well-known/jwks.json", jwks)])


JWKS_URL = "http://auth.test/auth-api/.well-known/jwks.json"


async def test_jwks_key_source_fetches_caches_and_refetches_on_unknown_kid(
    store: KeyStore,
) -> None:
    hits: list[int] = []
    transport = httpx.ASGITransport(app=jwks_app(store, hits))
    async with httpx.AsyncClient(transport=transport) as client:
        verifier = TokenVerifier(JwksKeySource(JWKS_URL, client), Revocations(), ISSUER)

        old = store.issue("organizer", 7)
        assert (await verifier.verify(f"Bearer {old}", "organizer")).user_id == 7
        assert (await verifier.verify(f"Bearer {old}", "organizer")).user_id == 7
        assert len(hits) == 1  # cached

        await store.rotate()
        new = store.issue("organizer", 8)

        # Refetches are limited to one a second, so wait that out, as a real verifier would.
        await asyncio.sleep(1.05)
        assert (await verifier.verify(f"Bearer {new}", "organizer")).user_id == 8
        assert len(hits) == 2
        assert (await verifier.verify(f"Bearer {old}", "organizer")).user_id == 7
        assert len(hits) == 2


async def test_jwks_key_source_rate_limits_refetches(store: KeyStore) -> None:
    hits: list[int] = []
    transport = httpx.ASGITransport(app=jwks_app(store, hits))
    async with httpx.AsyncClient(transport=transport) as client:
        source = JwksKeySource(JWKS_URL, client)
        first_kid = store.jwks()["keys"][0]["kid"]
        assert await source.public_key(first_kid) is not None
        for _ in range(5):
            assert await source.public_key("no-such-kid") is None
        assert len(hits) == 1


async def test_jwks_endpoint_failure_means_unauthorized(store: KeyStore) -> None:
    async def broken(request: Request) -> JSONResponse:
        return JSONResponse({"error": "down"}, status_code=503)

    app = Starlette(routes=[Route("/auth-api/.well-known/jwks.json", broken)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
        verifier = TokenVerifier(JwksKeySource(JWKS_URL, client), Revocations(), ISSUER)
        await refused(verifier, f"Bearer {store.issue('organizer', 7)}")
