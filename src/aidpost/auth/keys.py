"""Signing keys: Ed25519, one active, older ones kept for verification until they expire."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm
from sqlalchemy import select, update

from aidpost.auth.models import signing_keys
from aidpost.core.clock import Clock
from aidpost.core.db import Database
from aidpost.core.tokens import ALGORITHM, Realm


class KeyStore:
    def __init__(self, db: Database, clock: Clock, token_ttl_seconds: int, issuer: str) -> None:
        self.db, self.clock, self.ttl, self.issuer = db, clock, token_ttl_seconds, issuer
        self._active: tuple[str, Ed25519PrivateKey] | None = None
        self._public: dict[str, Any] = {}
        self._loaded_at = 0.0

    async def ensure_active(self) -> None:
        """Create the first key if there is none, then load the keys."""
        async with self.db.transaction() as session:
            exists = (
                await session.execute(select(signing_keys.c.kid).where(signing_keys.c.active))
            ).first()
            if exists is None:
                await session.execute(signing_keys.insert().values(**self._new_key_row()))
        await self.load()

    async def rotate(self) -> str:
        """Make a new active key; the previous one keeps verifying until its tokens expire."""
        row = self._new_key_row()
        async with self.db.transaction() as session:
            await session.execute(
                update(signing_keys)
                .where(signing_keys.c.active)
                .values(active=False, retired_at=self.clock.now())
            )
            await session.execute(signing_keys.insert().values(**row))
        await self.load()
        return str(row["kid"])

    def _new_key_row(self) -> dict[str, Any]:
        private = Ed25519PrivateKey.generate()
        kid = uuid.uuid4().hex
        jwk = json.loads(OKPAlgorithm.to_jwk(private.public_key()))
        jwk.update(kid=kid, alg=ALGORITHM, use="sig")
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return {
            "kid": kid,
            "private_pem": pem,
            "public_jwk": jwk,
            "created_at": self.clock.now(),
            "active": True,
        }

    async def load(self) -> None:
        horizon = self.clock.now() - dt.timedelta(seconds=self.ttl)
        async with self.db.session() as session:
            rows = (await session.execute(select(signing_keys))).all()
        public: dict[str, Any] = {}
        for row in rows:
            if row.retired_at is not None and row.retired_at < horizon:
                continue
            public[row.kid] = row.public_jwk
            if row.active:
                key = serialization.load_pem_private_key(row.private_pem.encode(), None)
                assert isinstance(key, Ed25519PrivateKey)
                self._active = (row.kid, key)
        self._public = public
        self._loaded_at = time.monotonic()

    def jwks(self) -> dict[str, Any]:
        return {"keys": list(self._public.values())}

    async def public_key(self, kid: str) -> Any | None:
        # An unknown kid may be a key another replica just made; look, at most once a second,
        # so tokens with made-up kids cannot turn into a query each.
        if kid not in self._public and time.monotonic() - self._loaded_at > 1.0:
            await self.load()
        jwk = self._public.get(kid)
        return None if jwk is None else jwt.PyJWK(jwk).key

    def issue(self, realm: Realm, user_id: int) -> str:
        assert self._active is not None, "keys not loaded"
        kid, key = self._active
        now_ms = int(self.clock.now().timestamp() * 1000)
        now = now_ms // 1000
        claims = {
            "iss": self.issuer,
            "aud": realm,
            "sub": str(user_id),
            "iat": now,
            "exp": now + self.ttl,
            "tms": now_ms,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": kid})
