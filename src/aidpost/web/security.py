"""Cookies, CSRF tokens and response headers of the web pages.

* The session cookie holds the user's token (as the APIs issued it): HttpOnly, SameSite=Lax,
  Secure over HTTPS, scoped to its UI's path, never readable by scripts, never in a URL.
* CSRF: a random per-browser nonce in an HttpOnly SameSite=Lax cookie; every form
  carries HMAC(secret, nonce) and every POST is refused without it, or when the browser
  says the request came from another site (``Sec-Fetch-Site``, ``Origin``).
* Every page carries a strict Content-Security-Policy: our own scripts and styles only,
  map tiles from OpenStreetMap, WebSockets to this origin (or the configured one).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import Response

from aidpost.core.errors import Forbidden

CSRF_COOKIE = "aidpost_csrf"
FLASH_COOKIE = "aidpost_flash"
TILES = "https://tile.openstreetmap.org"


@dataclass(frozen=True)
class Realm:
    """One UI: where it lives, what its session cookie is called."""

    path: str  # "/console" or "/app"
    cookie: str
    api: str  # the API its users sign in to and whose profile names them
    # Keeps data on the device (the app's saved chats, the service worker's copies): all of
    # it goes when the session does.
    stores: bool = False


CONSOLE = Realm("/console", "aidpost_console", "/organizer-api")
APP = Realm("/app", "aidpost_app", "/participant-api", stores=True)


def csp(ws_origin: str | None) -> str:
    connect = "'self'" + (f" {ws_origin}" if ws_origin else "")
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src 'self' data: {TILES}; connect-src {connect}; font-src 'self'; "
        "manifest-src 'self'; worker-src 'self'; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    )


def headers(ws_origin: str | None) -> dict[str, str]:
    return {
        "Content-Security-Policy": csp(ws_origin),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(self)",
    }


class Guard:
    def __init__(self, secret: str, secure_cookies: str) -> None:
        self._key = hashlib.sha256(b"aidpost-web:" + secret.encode()).digest()
        self._secure = secure_cookies

    # -- cookies --------------------------------------------------------------------------

    def secure(self, request: Request) -> bool:
        if self._secure != "auto":
            return self._secure == "always"
        return request.url.scheme == "https"

    def set_cookie(
        self,
        request: Request,
        response: Response,
        name: str,
        value: str,
        *,
        path: str,
        max_age: int | None = None,
        samesite: str = "lax",
    ) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=path,
            httponly=True,
            secure=self.secure(request),
            samesite=samesite,  # type: ignore[arg-type]
        )

    def sign_in(self, request: Request, response: Response, realm: Realm, token: str) -> None:
        self.set_cookie(request, response, realm.cookie, token, path=realm.path, max_age=86_400)

    @staticmethod
    def token(request: Request, realm: Realm) -> str | None:
        value = request.cookies.get(realm.cookie)
        return value if value and len(value) < 4096 else None

    @staticmethod
    def sign_out(response: Response, realm: Realm) -> None:
        response.delete_cookie(realm.cookie, path=realm.path)
        if realm.stores:
            # Browsers honour it over HTTPS (and on localhost); app.js forgets too.
            response.headers["Clear-Site-Data"] = '"cache", "storage"'

    # -- CSRF -----------------------------------------------------------------------------

    def nonce(self, request: Request) -> str | None:
        value = request.cookies.get(CSRF_COOKIE, "")
        return value if 20 <= len(value) <= 64 else None

    def ensure_nonce(self, request: Request, response: Response) -> str:
        """The browser's nonce, set on this response when it has none yet."""
        value = getattr(request.state, "csrf_nonce", None) or self.nonce(request)
        if value is None:
            value = secrets.token_urlsafe(24)
            # Lax, not Strict: a link from elsewhere must not replace the nonce that the
            # forms of other open tabs carry (cross-site POSTs still go without it).
            self.set_cookie(request, response, CSRF_COOKIE, value, path="/")
        request.state.csrf_nonce = value
        return value

    def csrf_token(self, nonce: str) -> str:
        mac = hmac.new(self._key, b"csrf:" + nonce.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def check_post(self, request: Request, submitted: str | None) -> None:
        """Refuse a POST that another site could have made."""
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            raise Forbidden("This form was sent from another site.")
        origin = request.headers.get("origin")
        if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
            raise Forbidden("This form was sent from another site.")
        nonce = self.nonce(request)
        if nonce is None or not submitted:
            raise Forbidden("The form has expired; reload the page and send it again.")
        if not hmac.compare_digest(self.csrf_token(nonce), submitted):
            raise Forbidden("The form has expired; reload the page and send it again.")

    # -- one-time notices ("Saved.") after a redirect ------------------------------------

    def flash(self, request: Request, response: Response, text: str, path: str) -> None:
        raw = base64.urlsafe_b64encode(text[:300].encode()).decode()
        mac = hmac.new(self._key, b"flash:" + raw.encode(), hashlib.sha256).hexdigest()[:32]
        self.set_cookie(request, response, FLASH_COOKIE, f"{raw}.{mac}", path=path, max_age=60)

    def take_flash(self, request: Request, response: Response, path: str) -> str | None:
        value = request.cookies.get(FLASH_COOKIE)
        if not value:
            return None
        response.delete_cookie(FLASH_COOKIE, path=path)
        raw, _, mac = value.partition(".")
        good = hmac.new(self._key, b"flash:" + raw.encode(), hashlib.sha256).hexdigest()[:32]
        if not hmac.compare_digest(good, mac):
            return None
        try:
            return base64.urlsafe_b64decode(raw.encode()).decode()
        except ValueError:
            return None
