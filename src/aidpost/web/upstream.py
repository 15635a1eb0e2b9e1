"""The APIs behind the web pages, called as any of their clients would call them.

The web component owns no data: every page reads and writes through the Organizer,
Participant and Messenger APIs with the signed-in user's token. In one process the calls
go to this process's own app without a network hop (and keep the browser's address, so
rate limits still count per browser); apart, they go over HTTP to ``AIDPOST_WEB_API_URL``.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from starlette.types import ASGIApp

log = logging.getLogger("aidpost.web")
TIMEOUT = 10.0


class UpstreamError(Exception):
    """An API answered with an error (ESME's ``{statusCode, message, error}``)."""

    def __init__(self, status_code: int, message: str | list[str]) -> None:
        self.status_code = status_code
        self.messages = [message] if isinstance(message, str) else [str(m) for m in message]
        super().__init__("; ".join(self.messages))


class Unreachable(UpstreamError):
    """The API could not be asked at all."""

    def __init__(self, detail: str) -> None:
        super().__init__(503, "The service is unavailable right now; try again in a moment.")
        self.detail = detail


class Upstream:
    def __init__(self, base_url: str | None) -> None:
        self._base = (base_url or "http://aidpost.internal").rstrip("/")
        self._app: ASGIApp | None = None
        self._client: httpx.AsyncClient | None = (
            httpx.AsyncClient(base_url=self._base, timeout=TIMEOUT) if base_url else None
        )

    def bind(self, app: ASGIApp) -> None:
        """In one process: call this app directly."""
        if self._client is None:
            self._app = app

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        params: dict[str, Any] | None = None,
        client_ip: str = "127.0.0.1",
    ) -> Any:
        """The JSON an API answers; ``UpstreamError`` for an error answer, ``Unreachable``
        when there was none."""
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            response = await self._send(method, path, headers, json, params, client_ip)
        except httpx.HTTPError as exc:
            log.warning("API call failed", extra={"path": path, "error": repr(exc)})
            raise Unreachable(repr(exc)) from exc
        if response.status_code == 204 or not response.content:
            if response.status_code >= 400:
                raise UpstreamError(response.status_code, response.reason_phrase)
            return None
        try:
            body = response.json()
        except ValueError as exc:
            raise Unreachable(f"not JSON from {path}: {response.status_code}") from exc
        if response.status_code >= 400:
            message = body.get("message") if isinstance(body, dict) else None
            raise UpstreamError(response.status_code, message or response.reason_phrase)
        return body

    async def _send(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        json: Any,
        params: dict[str, Any] | None,
        client_ip: str,
    ) -> httpx.Response:
        if self._client is not None:
            headers["X-Forwarded-For"] = client_ip
            return await self._client.request(
                method, path, headers=headers, json=json, params=params
            )
        if self._app is None:
            raise httpx.ConnectError("the web component is not bound to the APIs")
        transport = httpx.ASGITransport(app=self._app, client=(client_ip, 0))
        async with httpx.AsyncClient(
            transport=transport, base_url=self._base, timeout=TIMEOUT
        ) as client:
            return await client.request(method, path, headers=headers, json=json, params=params)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
