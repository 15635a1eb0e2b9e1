"""Sign-in, sign-out, password change, password links and revocation, for both realms."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from limits import parse
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from aidpost.auth import credentials
from aidpost.auth.keys import KeyStore
from aidpost.auth.models import inbox, outbox, password_tokens, revocations
from aidpost.auth.passwords import Passwords
from aidpost.core import outbox as outbox_mod
from aidpost.core.bus import Event
from aidpost.core.clock import Clock
from aidpost.core.db import Database
from aidpost.core.errors import ApiError, BadRequest, Forbidden, TooManyRequests
from aidpost.core.outbox import first_time
from aidpost.core.tokens import REVOCATIONS_STREAM, Principal, Realm, Revocations

SIGN_IN_ERROR = "invalid email or password"
AGENCY_NOT_APPROVED = "your agency is not approved by administrators"
WRONG_OLD_PASSWORD = "old password is incorrect"
BAD_PASSWORD_TOKEN = "invalid or expired token"
PASSWORDS_STREAM = "auth.passwords"
TOKEN_TTL = {"reset": dt.timedelta(hours=2), "setup": dt.timedelta(days=7)}
# Staff accounts made by someone else get a link to choose their own password; owners
# register themselves and the superadmin comes from settings.
SETUP_ROLES = (1, 3, 4)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class SignInProfile:
    """What a realm tells auth about a user at sign-in: its public JSON and whether it may."""

    user: dict[str, Any]
    refusal: str | None = None


ProfileLookup = Callable[[AsyncSession, int], Awaitable[SignInProfile | None]]


@dataclass(frozen=True)
class RealmBinding:
    """How auth reaches one realm: its database, its user views and ESME's wording there."""

    realm: Realm
    db: Database
    profile: ProfileLookup
    # ESME's organizer API answers bad credentials with 400, its participant API with 401.
    bad_credentials: Callable[[], ApiError] = lambda: BadRequest(SIGN_IN_ERROR)
    wrong_password: Callable[[], ApiError] = lambda: BadRequest(WRONG_OLD_PASSWORD)
    # A valid token of a user who may no longer act (deleted, agency not approved).
    refused: Callable[[], ApiError] = Forbidden


class AuthService:
    def __init__(
        self,
        *,
        db: Database,
        keys: KeyStore,
        passwords: Passwords,
        realms: dict[Realm, RealmBinding],
        revocations_cache: Revocations,
        clock: Clock,
        throttle_storage: Storage,
        throttle: str,
        on_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self.db, self.keys, self.passwords, self.realms = db, keys, passwords, realms
        self.cache, self.clock, self.on_commit = revocations_cache, clock, on_commit
        self._limiter = MovingWindowRateLimiter(throttle_storage)
        self._throttle = parse(throttle)
        self._reset_throttle = parse("5/hour")

    async def _throttled(self, realm: str, email: str, address: str) -> bool:
        keys = (("account", realm, credentials.normalize_email(email)), ("address", address))
        for key in keys:
            if not await self._limiter.test(self._throttle, "sign-in", *key):
                return True
        return False

    async def _failed(self, realm: str, email: str, address: str) -> None:
        await self._limiter.hit(self._throttle, "sign-in", "account", realm, email.lower().strip())
        await self._limiter.hit(self._throttle, "sign-in", "address", address)

    async def sign_in(
        self, realm: Realm, email: str, password: str, address: str
    ) -> dict[str, Any]:
        """Check the password; the answer and its timing do not tell whether the email exists."""
        if await self._throttled(realm, email, address):
            raise TooManyRequests("too many failed sign-in attempts, try again later")
        binding = self.realms[realm]
        async with binding.db.session() as session:
            row = await credentials.by_email(session, email)
            ok = await self.passwords.verify(row.password_hash if row else None, password)
            if not ok or row is None:
                await self._failed(realm, email, address)
                raise binding.bad_credentials()
            profile = await binding.profile(session, row.user_id)
        if profile is None:
            raise binding.bad_credentials()
        if profile.refusal:
            raise BadRequest(profile.refusal)
        if self.passwords.needs_rehash(row.password_hash):
            new_hash = await self.passwords.hash(password)
            async with binding.db.transaction() as session:
                await credentials.set_hash(session, row.user_id, new_hash, None)
        return {"user": profile.user, "token": self.token(realm, row.user_id)}

    def token(self, realm: Realm, user_id: int) -> str:
        """A token in ESME's prefixed form, ``<realm>:<jwt>``."""
        return f"{realm}:{self.keys.issue(realm, user_id)}"

    async def revoke(self, realm: Realm, user_id: int) -> int:
        """Refuse every token of this user issued before now, in every component."""
        not_before = int(self.clock.now().timestamp() * 1000) + 1
        values = {"realm": realm, "user_id": user_id, "not_before_ms": not_before}
        async with self.db.transaction() as session:
            dialect = session.get_bind().dialect.name
            ins: Any = (postgresql if dialect == "postgresql" else sqlite).insert(revocations)
            await session.execute(
                ins.values(**values).on_conflict_do_update(
                    index_elements=["realm", "user_id"], set_={"not_before_ms": not_before}
                )
            )
            event = Event(
                "auth.revoked.v1",
                {"realm": realm, "userId": user_id, "notBeforeMs": not_before},
            )
            await outbox_mod.publish(session, outbox, REVOCATIONS_STREAM, event)
        self.cache.apply(realm, user_id, not_before)
        self.on_commit()
        return not_before

    async def public_user(self, principal: Principal) -> dict[str, Any]:
        """The caller's public view, if they may still act (the realm's authentication guard)."""
        binding = self.realms[principal.realm]
        async with binding.db.session() as session:
            profile = await binding.profile(session, principal.user_id)
        if profile is None or profile.refusal:
            raise binding.refused()
        return profile.user

    async def sign_out(self, principal: Principal) -> None:
        await self.public_user(principal)
        await self.revoke(principal.realm, principal.user_id)

    async def change_password(self, principal: Principal, old: str, new: str) -> None:
        await self.public_user(principal)
        binding = self.realms[principal.realm]
        async with binding.db.session() as session:
            current = await credentials.hash_of(session, principal.user_id)
        if current is None:
            raise binding.refused()
        if not await self.passwords.verify(current, old):
            raise binding.wrong_password()
        new_hash = await self.passwords.hash(new)
        async with binding.db.transaction() as session:
            await credentials.set_hash(session, principal.user_id, new_hash, self.clock.now())
        async with self.db.transaction() as session:  # password links sent earlier too
            await self._use_up_tokens(session, principal.realm, principal.user_id, self.clock.now())
        await self.revoke(principal.realm, principal.user_id)

    # -- password links ------------------------------------------------------------------------

    async def request_reset(self, realm: Realm, email: str, address: str) -> None:
        """Send a reset link if the address belongs to an account; the answer is the same
        either way (no account enumeration). Five requests an hour per account and per
        client address."""
        normalized = credentials.normalize_email(email)
        for key in (("account", realm, normalized), ("address", address)):
            if not await self._limiter.hit(self._reset_throttle, "reset", *key):
                raise TooManyRequests("too many password reset requests, try again later")
        async with self.realms[realm].db.session() as session:
            row = await credentials.by_email(session, normalized)
        if row is not None:
            await self._issue(realm, int(row.user_id), normalized, "reset")

    async def _issue(
        self, realm: Realm, user_id: int, email: str, purpose: str, event_id: str | None = None
    ) -> None:
        """A new single-use token (earlier unused ones of the same purpose stop working) and
        ``auth.password_token.v1`` for the mailer, in one transaction."""
        token = secrets.token_urlsafe(32)
        now = self.clock.now()
        expires = now + TOKEN_TTL[purpose]
        async with self.db.transaction() as session:
            if event_id is not None and not await first_time(session, inbox, event_id):
                return
            await session.execute(
                update(password_tokens)
                .where(
                    password_tokens.c.realm == realm,
                    password_tokens.c.user_id == user_id,
                    password_tokens.c.purpose == purpose,
                    password_tokens.c.used_at.is_(None),
                )
                .values(used_at=now)
            )
            await session.execute(
                password_tokens.insert().values(
                    token_hash=token_hash(token), realm=realm, user_id=user_id,
                    purpose=purpose, created_at=now, expires_at=expires,
                )
            )  # fmt: skip
            event = Event(
                "auth.password_token.v1",
                {
                    "realm": realm,
                    "userId": user_id,
                    "email": email,
                    "purpose": purpose,
                    "token": token,
                    "expiresAt": expires.isoformat(),
                },
            )
            await outbox_mod.publish(session, outbox, PASSWORDS_STREAM, event)
        self.on_commit()

    async def set_password_with_token(self, realm: Realm, token: str, password: str) -> None:
        """Use a reset or setup link once: the password is set and earlier sessions end."""
        new_hash = await self.passwords.hash(password)
        now = self.clock.now()
        async with self.db.transaction() as session:
            row = (
                await session.execute(
                    select(password_tokens)
                    .where(password_tokens.c.token_hash == token_hash(token))
                    .with_for_update()
                )
            ).first()
            if (
                row is None
                or row.realm != realm
                or row.used_at is not None
                or row.expires_at <= now
            ):
                raise BadRequest(BAD_PASSWORD_TOKEN)
            # This link and every other unused one of the account (a setup link after a
            # reset, an older reset) stop working.
            await self._use_up_tokens(session, realm, row.user_id, now)
        async with self.realms[realm].db.transaction() as session:
            if await credentials.hash_of(session, row.user_id) is None:
                raise BadRequest(BAD_PASSWORD_TOKEN)  # the account is gone
            await credentials.set_hash(session, row.user_id, new_hash, now)
        await self.revoke(realm, row.user_id)

    @staticmethod
    async def _use_up_tokens(
        session: AsyncSession, realm: str, user_id: int, now: dt.datetime
    ) -> None:
        await session.execute(
            update(password_tokens)
            .where(
                password_tokens.c.realm == realm,
                password_tokens.c.user_id == user_id,
                password_tokens.c.used_at.is_(None),
            )
            .values(used_at=now)
        )

    async def on_organizer_change(self, event: Event) -> None:
        """A staff account created by someone else gets a link to set its own password."""
        data = event.data
        user = data.get("user")
        if (
            event.type != "organizer.user.changed.v1"
            or data.get("change") != "insert"
            or not isinstance(user, dict)
            or user.get("role") not in SETUP_ROLES
        ):
            return
        await self._issue("organizer", int(user["id"]), str(user["email"]), "setup", event.id)

    async def load_revocations(self) -> None:
        """Fill the local cache from the table (the bus may have been trimmed)."""
        async with self.db.session() as session:
            for row in (await session.execute(select(revocations))).all():
                self.cache.apply(row.realm, row.user_id, row.not_before_ms)

    async def sign_up_participant(self, email: str, password: str, phone: str) -> dict[str, Any]:
        """Create a participant and its credential in one transaction; return user and token."""
        from aidpost.participant.service import create
        from aidpost.participant.views import participant

        binding = self.realms["participant"]
        hashed = await self.passwords.hash(password)
        async with binding.db.transaction() as session:
            user = await create(session, email, phone, self.clock.now())
            await credentials.create(session, user.id, email, hashed)
            view = participant(user)
        return {"user": view, "token": self.token("participant", user.id)}
