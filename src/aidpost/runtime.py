"""The composition root: builds every shared dependency once per process.

Components receive the ``Runtime`` and take from it what they need (settings, clock, bus,
databases by URL, the token verifier); nothing is built at import time.
"""

from __future__ import annotations

import uuid

from aidpost.core.bus import Bus, Subscription, create_bus
from aidpost.core.clock import Clock, SystemClock
from aidpost.core.db import Database
from aidpost.core.hub import Hub, create_hub
from aidpost.core.settings import Settings
from aidpost.core.tokens import KeySource, Revocations, TokenVerifier


class Runtime:
    def __init__(self, settings: Settings, *, clock: Clock | None = None, bus: Bus | None = None):
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.bus: Bus = bus or create_bus(settings.core.bus_url, settings.core.bus_prefix)
        self.hub: Hub = create_hub(settings.core.bus_url, settings.core.bus_prefix)
        self.instance = uuid.uuid4().hex[:12]
        self.revocations = Revocations()
        self._databases: dict[str, Database] = {}
        self._verifier: TokenVerifier | None = None
        self._revocation_sub: Subscription | None = None

    def database(self, url: str) -> Database:
        """One engine per URL in this process, however many components use it."""
        if url not in self._databases:
            self._databases[url] = Database(url)
        return self._databases[url]

    def use_keys(self, keys: KeySource) -> None:
        self._verifier = TokenVerifier(keys, self.revocations, self.settings.auth.issuer)

    @property
    def verifier(self) -> TokenVerifier:
        if self._verifier is None:
            raise RuntimeError("no key source configured")
        return self._verifier

    async def start(self) -> None:
        self._revocation_sub = self.revocations.subscription(self.bus, self.instance)
        self._revocation_sub.start_background()

    async def stop(self) -> None:
        if self._revocation_sub is not None:
            await self._revocation_sub.stop()
        for db in self._databases.values():
            await db.dispose()
        await self.hub.close()
        await self.bus.close()
