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
def _assets() -> dict[str, tuple[bytes, str, str]]:
    """Our assets by name, read once: bytes, type and ETag."""
    out = {}
    for path in files("aidpost.web").joinpath("static").iterdir():
        kind = next((v for k, v in TYPES.items() if path.name.endswith(k)), None)
        if kind is not None and path.is_file() and not path.name.startswith("."):
            data = path.read_bytes()
            out[path.name] = (data, kind, '"' + hashlib.sha256(data).hexdigest()[:16] + '"')
    return out


def asset(name: str) -> tuple[bytes, str, str] | None:
    """One of our assets; None for any other name."""
    return _assets().get(name)


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
