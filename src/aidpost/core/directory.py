"""Data of another component that a component reads through its API: participants'
contact details (the messenger's chats carry ``participant``; the mailer writes to
participants) and chat transcripts (the mailer). Each is a port with an in-process adapter
and one that asks the owning component over HTTP."""

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


class Transcripts(Protocol):
    async def transcript(self, chat_id: str) -> dict[str, Any] | None:
        """An ended chat and its messages, None if there is no such ended chat; raises
        ``DirectoryUnavailable`` when the messenger cannot be asked."""
        ...


class LocalTranscripts:
    def __init__(self, lookup: Callable[[str], Awaitable[dict[str, Any] | None]]) -> None:
        self._lookup = lookup

    async def transcript(self, chat_id: str) -> dict[str, Any] | None:
        return await self._lookup(chat_id)


class HttpTranscripts:
    """The messenger's internal ``GET /messenger-api/internal/chats/{id}/transcript``."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=5.0)
        self._key = api_key

    async def transcript(self, chat_id: str) -> dict[str, Any] | None:
        try:
            r = await self._client.get(
                f"/messenger-api/internal/chats/{chat_id}/transcript",
                headers={"Authorization": f"Bearer {self._key}"},
            )
            if r.status_code == 400:
                return None
            r.raise_for_status()
            found: dict[str, Any] = r.json()
            return found
        except (httpx.HTTPError, ValueError) as exc:
            raise DirectoryUnavailable(str(exc)) from exc

    async def close(self) -> None:
        await self._client.aclose()
