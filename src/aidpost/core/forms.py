"""HTML forms posted as ``application/x-www-form-urlencoded``, read with limits."""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import Request

from aidpost.core.errors import BadRequest


async def read_form(request: Request, max_bytes: int = 20_000) -> dict[str, list[str]]:
    """The fields of a posted form; a clear ``BadRequest`` for anything else."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise BadRequest("send the form as application/x-www-form-urlencoded")
    raw = await request.body()
    if len(raw) > max_bytes:
        raise BadRequest("the form is too large")
    try:
        return parse_qs(raw.decode("utf-8"), max_num_fields=300, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the form could not be read") from None
