"""What every page of the web UIs shares: templates, the signed-in session, the answer to
an error, and the route class that turns any failure into a page instead of a 500.

Handlers are thin: they read the form, call one API, and render or redirect
(Post/Redirect/Get). An API's error message is shown to the person as the API wrote it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from aidpost.core.errors import ApiError
from aidpost.core.forms import read_form
from aidpost.web.security import Guard, Realm, headers
from aidpost.web.upstream import Upstream, UpstreamError

log = logging.getLogger("aidpost.web")

env = Environment(
    loader=PackageLoader("aidpost.web", "templates"),
    autoescape=select_autoescape(["html", "xml", "svg"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _when(value: str | None) -> str:
    """An API time as people read it (UTC, minutes)."""
    if not value:
        return ""
    try:
        at = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _href(value: str | None) -> str:
    """A website as a link: http(s) only; a bare host gets https:// (no relative links, no
    javascript: or data: URLs)."""
    if not value:
        return ""
    scheme = urlsplit(value).scheme.lower()
    return value if scheme in ("http", "https") else "https://" + value.split("://")[-1]


env.filters["when"] = _when
env.filters["href"] = _href


class Redirect(Exception):
    def __init__(self, url: str, sign_out: bool = False) -> None:
        self.url = url
        self.sign_out = sign_out  # the session cookie is dead: clear it on the way


@dataclass
class Web:
    """The web component's parts, on ``app.state.web``."""

    upstream: Upstream
    guard: Guard
    ws_origin: str | None = None
    ws_url: str | None = None

    @staticmethod
    def of(request: Request) -> Web:
        web: Web = request.app.state.web
        return web


@dataclass
class Session:
    """A signed-in user of one UI, with their token for the APIs."""

    request: Request
    realm: Realm
    token: str
    user: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    async def api(
        self,
        method: str,
        path: str,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        return await Web.of(self.request).upstream.call(
            method,
            path,
            token=self.token,
            json=json,
            params=params,
            client_ip=client_ip(self.request),
        )


async def session_of(request: Request, realm: Realm) -> Session:
    """The signed-in user (their profile, fresh from the API: a revoked token ends here),
    or a redirect to sign in."""
    web = Web.of(request)
    token = web.guard.token(request, realm)
    if token is None:
        raise Redirect(f"{realm.path}/sign-in")
    try:
        user = await web.upstream.call(
            "GET", f"{realm.api}/profile", token=token, client_ip=client_ip(request)
        )
    except UpstreamError as exc:
        if exc.status_code in (401, 403):
            raise Redirect(f"{realm.path}/sign-in", sign_out=True) from None
        raise
    session = Session(request, realm, token, user)
    request.state.web_session = session
    return session


async def sign_in(request: Request, realm: Realm, template: str, **context: Any) -> Response:
    """The sign-in form's POST: the API's answer becomes the session cookie."""
    form = await form_of(request)
    email = form.get("email", "").strip()
    try:
        answer = await Web.of(request).upstream.call(
            "POST",
            f"{realm.api}/auth/sign-in",
            json={"email": email, "password": form.get("password", "")},
            client_ip=client_ip(request),
        )
    except UpstreamError as exc:
        if exc.status_code >= 500:
            raise
        return render(request, realm, template, 400, errors=exc.messages,
                      values={"email": email}, **context)  # fmt: skip
    return signed_in_response(request, realm, answer["token"])


def signed_in_response(request: Request, realm: Realm, token: str) -> Response:
    response = redirect(request, realm, realm.path)
    Web.of(request).guard.sign_in(request, response, realm, token)
    return response


async def sign_out(request: Request, realm: Realm) -> Response:
    await form_of(request)
    web = Web.of(request)
    token = web.guard.token(request, realm)
    if token:
        # The cookie goes either way; an expired token is signed out already.
        with contextlib.suppress(UpstreamError):
            await web.upstream.call(
                "POST", f"{realm.api}/auth/sign-out", token=token, client_ip=client_ip(request)
            )
    response = redirect(request, realm, f"{realm.path}/sign-in", "You are signed out.")
    web.guard.sign_out(response, realm)
    return response


async def change_password(
    request: Request,
    s: Session,
    refused: Callable[[list[str]], Response],
    refusals: tuple[int, ...] = (400,),
) -> Response:
    """The password form's POST. A changed password signs out every earlier token, this
    session's too: on to the sign-in page."""
    form = await form_of(request)
    change = {k: form.get(k, "") for k in ("oldPassword", "newPassword", "confirmNewPassword")}
    try:
        await s.api("PATCH", f"{s.realm.api}/profile/change-password", json=change)
    except UpstreamError as exc:
        if exc.status_code not in refusals:
            raise
        return refused(exc.messages)
    response = redirect(request, s.realm, f"{s.realm.path}/sign-in",
                        "Your password is changed. Sign in with the new one.")  # fmt: skip
    Web.of(request).guard.sign_out(response, s.realm)
    return response


def socket_token(request: Request, s: Session) -> Response:
    """The session's token for the messenger's WebSocket (browsers cannot set headers on
    one). Same-origin scripts only: a POST with the page's CSRF token; never cached."""
    Web.of(request).guard.check_post(request, request.headers.get("x-csrf-token"))
    return JSONResponse(
        {"authorization": f"Bearer {s.token}"},
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "127.0.0.1"


async def form_of(request: Request, max_bytes: int = 20_000) -> dict[str, str]:
    """The posted form (first value of each field), after the CSRF check."""
    return {k: v[0] for k, v in (await form_lists(request, max_bytes)).items()}


async def form_lists(request: Request, max_bytes: int = 20_000) -> dict[str, list[str]]:
    """The posted form with every value of each field (checkbox groups), after the CSRF
    check."""
    fields = await read_form(request, max_bytes)
    Web.of(request).guard.check_post(request, (fields.get("csrf") or [""])[0])
    fields.pop("csrf", None)
    return fields


def render(
    request: Request,
    realm: Realm,
    template: str,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    web = Web.of(request)
    response = HTMLResponse("", status_code=status_code, headers=headers(web.ws_origin))
    nonce = web.guard.ensure_nonce(request, response)
    context.setdefault("session", None)
    context.setdefault("errors", [])
    context.setdefault("values", {})
    context.setdefault("notice", web.guard.take_flash(request, response, realm.path))
    text = env.get_template(template).render(
        csrf=web.guard.csrf_token(nonce), path=request.url.path, realm=realm, **context
    )
    response.body = text.encode()
    response.headers["content-length"] = str(len(response.body))
    return response


def redirect(request: Request, realm: Realm, url: str, notice: str | None = None) -> Response:
    response = RedirectResponse(url, status_code=303, headers=headers(Web.of(request).ws_origin))
    if notice:
        Web.of(request).guard.flash(request, response, notice, realm.path)
    return response


def page_route(realm: Realm, error_template: str) -> type[APIRoute]:
    """A route class whose handlers answer with a page whatever happens."""

    class PageRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            inner = super().get_route_handler()

            async def handler(request: Request) -> Response:
                try:
                    return await inner(request)
                except Redirect as exc:
                    response = redirect(request, realm, exc.url)
                    if exc.sign_out:
                        Web.of(request).guard.sign_out(response, realm)
                    return response
                except ClientDisconnect:
                    return Response(status_code=400)  # nobody is left to read a page
                except UpstreamError as exc:
                    if exc.status_code == 401:
                        response = redirect(request, realm, f"{realm.path}/sign-in")
                        Web.of(request).guard.sign_out(response, realm)
                        return response
                    return _error(request, realm, error_template, exc.status_code, exc.messages)
                except ApiError as exc:
                    messages = [exc.message] if isinstance(exc.message, str) else exc.message
                    return _error(request, realm, error_template, exc.status_code, messages)
                except RequestValidationError:
                    return _error(request, realm, error_template, 404, ["There is no such page."])
                except HTTPException as exc:
                    return _error(request, realm, error_template, exc.status_code, [exc.detail])
                except Exception:
                    log.exception("page failed", extra={"path": request.url.path})
                    return _error(request, realm, error_template, 500,
                                  ["Something went wrong on our side; it is logged."])  # fmt: skip

            return handler

    return PageRoute


def _error(
    request: Request, realm: Realm, template: str, status_code: int, messages: list[str]
) -> HTMLResponse:
    titles = {403: "Not allowed", 404: "Not found", 503: "Unavailable"}
    return render(
        request,
        realm,
        template,
        status_code,
        title=titles.get(status_code, "Something is wrong"),
        errors=messages,
        session=getattr(request.state, "web_session", None),
    )
