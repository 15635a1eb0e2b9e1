"""Participants' contact details for other components (the messenger's chats carry
``participant``; the mailer writes to participants): a port with an in-process adapter and
one that asks the participant component over HTTP."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import httpx

log = logging.getLogger("aidpost.directory")
Users = dict[int, dict[str, Any]]


class DirectoryUnavailable(Exception):
    """The participant component could not be asked (a strict directory only)."""


class Directory(Protocol):
    async def users(self, ids: Sequence[int]) -> Users:
        """Id -> ``{id, email, phoneNumber}`` of the participants that exist."""
        ...


class LocalDirectory:
    def __init__(self, lookup: Callable[[list[int]], Awaitable[dict[str, Any]]]) -> None:
        self._lookup = lookup

    async def users(self, ids: Sequence[int]) -> Users:
        if not ids:
            return {}
        found = await self._lookup(sorted(set(ids)))
        return {int(k): v for k, v in found.items()}


class HttpDirectory:
    """ESME's internal ``GET /participant-api/users {ids}`` with the participant API key."""

    def __init__(self, base_url: str, api_key: str, *, strict: bool = False) -> None:
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=2.0)
        self._key = api_key
        # Strict: a failed lookup raises (a caller that retries later), instead of
        # answering as if nobody existed.
        self._strict = strict

    async def users(self, ids: Sequence[int]) -> Users:
        if not ids:
            return {}
        try:
            r = await self._client.get(
                "/participant-api/users",
                params={"ids": ",".join(str(i) for i in sorted(set(ids)))},
                headers={"Authorization": f"Bearer {self._key}"},
            )
            r.raise_for_status()
            return {int(k): v for k, v in r.json().items()}
        except (httpx.HTTPError, ValueError) as exc:
            if self._strict:
                raise DirectoryUnavailable(str(exc)) from exc
            # ESME too leaves `participant` out when the lookup fails; chats still work.
            log.warning("participant lookup failed", exc_info=True)
            return {}

    async def close(self) -> None:
        await self._client.aclose()
