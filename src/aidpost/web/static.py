"""The web UIs' own stylesheets, scripts and icons (no third-party asset, no CDN)."""

from __future__ import annotations

import hashlib
from functools import cache
from importlib.resources import files

from fastapi import APIRouter, Request
from fastapi.responses import Response

from aidpost.core.errors import NotFound

router = APIRouter(prefix="/web", tags=["web assets"], include_in_schema=False)
TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".webmanifest": "application/manifest+json",
    ".png": "image/png",
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
}


@cache
def asset(name: str) -> tuple[bytes, str, str] | None:
    """The bytes, type and ETag of one of our assets; None for anything else."""
    if "/" in name or name.startswith(".") or not any(name.endswith(t) for t in TYPES):
        return None
    path = files("aidpost.web").joinpath("static", name)
    if not path.is_file():
        return None
    data = path.read_bytes()
    kind = next(v for k, v in TYPES.items() if name.endswith(k))
    return data, kind, '"' + hashlib.sha256(data).hexdigest()[:16] + '"'


@router.get("/static/{name}", operation_id="webAsset")
async def serve(name: str, request: Request) -> Response:
    found = asset(name)
    if found is None:
        raise NotFound("There is no such file.")
    data, kind, etag = found
    cache = {
        "ETag": etag,
        "Cache-Control": "public, max-age=300",
        "X-Content-Type-Options": "nosniff",
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=cache)
    return Response(data, media_type=kind, headers=cache)
