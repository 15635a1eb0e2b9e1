"""The auth component's composition: keys, passwords, realms, relay."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter

from aidpost.auth.api import auth_router, organizer_router, participant_router
from aidpost.auth.keys import KeyStore
from aidpost.auth.models import outbox
from aidpost.auth.passwords import Passwords
from aidpost.auth.service import SIGN_IN_ERROR, AuthService, RealmBinding
from aidpost.core.bus import Subscription
from aidpost.core.component import database_check
from aidpost.core.errors import Unauthorized
from aidpost.core.http import Check, async_storage
from aidpost.core.migrate import upgrade
from aidpost.core.outbox import OutboxRelay
from aidpost.core.tokens import CallableKeySource, Realm
from aidpost.runtime import Runtime

log = logging.getLogger("aidpost.auth")
AUTH_HISTORY = "auth"
KEY_RELOAD_SECONDS = 30
REALM_HISTORY = "auth:realm_migrations"


def passwords_from(rt: Runtime) -> Passwords:
    s = rt.settings.auth
    return Passwords(memory_kib=s.argon2_memory_kib, time_cost=s.argon2_time_cost)


class AuthComponent:
    name = "auth"

    def __init__(self, rt: Runtime) -> None:
        from aidpost.organizer.profiles import sign_in_profile as organizer_profile
        from aidpost.participant.service import sign_in_profile as participant_profile

        s = rt.settings
        self.rt = rt
        self.db = rt.database(s.auth_db)
        self.keys = KeyStore(self.db, rt.clock, s.auth.token_ttl_seconds, s.auth.issuer)
        self.relay = OutboxRelay(self.db, outbox, rt.bus, interval=0.5)
        self.realm_dbs = {
            "organizer": rt.database(s.organizer_db),
            "participant": rt.database(s.participant_db),
        }
        realms: dict[Realm, RealmBinding] = {
            "organizer": RealmBinding("organizer", self.realm_dbs["organizer"], organizer_profile),
            "participant": RealmBinding(
                "participant",
                self.realm_dbs["participant"],
                participant_profile,
                bad_credentials=lambda: Unauthorized(SIGN_IN_ERROR),
                wrong_password=lambda: Unauthorized("invalid password"),
                refused=lambda: Unauthorized("invalid token"),
            ),
        }
        self.service = AuthService(
            db=self.db,
            keys=self.keys,
            passwords=passwords_from(rt),
            realms=realms,
            revocations_cache=rt.revocations,
            clock=rt.clock,
            throttle_storage=async_storage(s.core.rate_limit_storage),
            throttle=f"{s.auth.throttle_attempts}/{s.auth.throttle_window_seconds} seconds",
            on_commit=self.relay.kick,
        )
        rt.use_keys(CallableKeySource(self.keys.public_key))
        self._reloader: asyncio.Task[None] | None = None
        self.setup_links = Subscription(
            rt.bus, "organizer.changes", "auth-setup-links", self.service.on_organizer_change
        )

    def routers(self) -> Sequence[APIRouter]:
        return (organizer_router, participant_router, auth_router)

    def state(self) -> dict[str, Any]:
        return {"auth": self.service}

    def checks(self) -> Sequence[Check]:
        return [database_check("auth_db", self.db, AUTH_HISTORY)] + [
            database_check(f"auth_{realm}_db", db, REALM_HISTORY)
            for realm, db in self.realm_dbs.items()
        ]

    async def _reload_keys(self) -> None:
        # Another replica (or `aidpost rotate-keys`) may have rotated: pick it up.
        while True:
            await asyncio.sleep(KEY_RELOAD_SECONDS)
            try:
                await self.keys.load()
            except Exception:
                log.exception("reloading signing keys failed")

    async def start(self) -> None:
        await upgrade(self.db, AUTH_HISTORY)
        for db in self.realm_dbs.values():
            await upgrade(db, REALM_HISTORY)
        await self.keys.ensure_active()
        await self.service.load_revocations()
        self.relay.start_background()
        self.setup_links.start_background()
        self._reloader = asyncio.create_task(self._reload_keys(), name="auth-key-reload")

    async def stop(self) -> None:
        if self._reloader is not None:
            self._reloader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reloader
        await self.setup_links.stop()
        await self.relay.stop()
