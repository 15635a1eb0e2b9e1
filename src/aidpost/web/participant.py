"""The participant app (``/app``): ESME's participant app as pages for a phone, installable.

Tabs as in ESME's app: Help (find the event, ask for help with the location, see the place
in the queue), Chats (active and archived; the conversation), Settings. Pages call the
Participant API and the messenger's archives with the participant's token, which lives only
in an HttpOnly cookie; the conversation's script gets it for the WebSocket as the console's
does. A service worker keeps the pages and chats already seen readable offline.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from aidpost.core.errors import NotFound
from aidpost.web import pages
from aidpost.web.pages import Session, Web, form_of, redirect, render, session_of
from aidpost.web.security import APP
from aidpost.web.upstream import UpstreamError

PAR = "/participant-api"
MSG = "/messenger-api"
PROBLEMS = (
    ("medical", "I need medical assistance"),
    ("security", "I need security assistance"),
    ("other", "I will describe my problem"),
)

router = APIRouter(
    prefix="/app",
    tags=["participant app"],
    include_in_schema=False,
    route_class=pages.page_route(APP, "app/message.html"),
)


async def signed_in(request: Request) -> Session:
    return await session_of(request, APP)


Signed = Annotated[Session, Depends(signed_in)]


def page(s: Session, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return render(s.request, APP, template, status_code, session=s, **context)


def _chat_id(text: str) -> str:
    if len(text) != 24 or any(c not in "0123456789abcdef" for c in text):
        raise NotFound("There is no such chat.")
    return text


@router.get("", operation_id="appHome")
@router.get("/", operation_id="appHomeSlash")
async def home(request: Request, s: Signed) -> Response:
    return redirect(request, APP, f"{APP.path}/help")


# -- signing in and up -----------------------------------------------------------------------


@router.get("/sign-in", operation_id="appSignInPage")
async def sign_in_page(request: Request) -> Response:
    return render(request, APP, "app/sign_in.html")


@router.post("/sign-in", operation_id="appSignIn")
async def sign_in(request: Request) -> Response:
    return await pages.sign_in(request, APP, "app/sign_in.html")


@router.get("/sign-up", operation_id="appSignUpPage")
async def sign_up_page(request: Request) -> Response:
    return render(request, APP, "app/sign_up.html")


@router.post("/sign-up", operation_id="appSignUp")
async def sign_up(request: Request) -> Response:
    form = await form_of(request)
    fields = ("email", "phoneNumber", "password", "confirmPassword")
    body = {k: form.get(k, "").strip() if "assword" not in k else form.get(k, "") for k in fields}
    try:
        answer = await Web.of(request).upstream.call(
            "POST", f"{PAR}/auth/sign-up", json=body, client_ip=pages.client_ip(request)
        )
    except UpstreamError as exc:
        if exc.status_code >= 500:
            raise
        kept = {k: v for k, v in body.items() if "assword" not in k}
        return render(request, APP, "app/sign_up.html", 400, errors=exc.messages, values=kept)
    return pages.signed_in_response(request, APP, answer["token"])


@router.post("/sign-out", operation_id="appSignOut")
async def sign_out(request: Request) -> Response:
    return await pages.sign_out(request, APP)


# -- help: events, requests, the queue -------------------------------------------------------


async def _open_requests(s: Session) -> list[dict[str, Any]]:
    found = await s.api("GET", f"{PAR}/help-requests")
    return [r for r in found if r["status"] in ("waiting", "claimed")]


@router.get("/help", operation_id="appHelp")
async def help_page(request: Request, s: Signed) -> Response:
    query = request.query_params.get("query", "").strip()[:200]
    events = await s.api("GET", f"{PAR}/events", params={"query": query} if query else None)
    return page(s, "app/help.html", events=events, query=query, open=await _open_requests(s))


@router.get("/events/{event_id}", operation_id="appEvent")
async def event_page(s: Signed, event_id: int) -> Response:
    event = await s.api("GET", f"{PAR}/events/{event_id}")
    mine = [r for r in await _open_requests(s) if r["eventId"] == event_id]
    return page(s, "app/event.html", event=event, open_request=mine[0] if mine else None,
                problems=PROBLEMS)  # fmt: skip


@router.post("/events/{event_id}/help", operation_id="appAskForHelp")
async def ask_for_help(request: Request, s: Signed, event_id: int) -> Response:
    form = await form_of(request)
    problem = form.get("problemType", "other")
    body: dict[str, Any] = {
        "eventId": event_id,
        "problemType": problem,
        # The chosen sentence stands for the words, except "I will describe": the API then
        # asks for them.
        "description": form.get("description", "").strip()
        or (dict(PROBLEMS)[problem] if problem in ("medical", "security") else ""),
        "sendTranscript": form.get("sendTranscript") == "on",
    }
    with contextlib.suppress(ValueError):
        lat, lng = float(form.get("lat", "")), float(form.get("lng", ""))
        if -90 <= lat <= 90 and -180 <= lng <= 180:
            body["lat"], body["lng"] = round(lat, 6), round(lng, 6)
    try:
        made = await s.api("POST", f"{PAR}/chat-requests", json=body)
    except UpstreamError as exc:
        if exc.status_code != 400:
            raise
        event = await s.api("GET", f"{PAR}/events/{event_id}")
        mine = [r for r in await _open_requests(s) if r["eventId"] == event_id]
        return page(s, "app/event.html", 400, event=event, open_request=mine[0] if mine else None,
                    problems=PROBLEMS, errors=exc.messages, values=form)  # fmt: skip
    return redirect(request, APP, f"{APP.path}/requests/{made['id']}", "Help is on its way.")


@router.get("/requests/{request_id}", operation_id="appRequest")
async def request_page(request: Request, s: Signed, request_id: int) -> Response:
    found = await s.api("GET", f"{PAR}/help-requests/{request_id}")
    if found["status"] == "claimed" and found.get("chatId"):
        return redirect(request, APP, f"{APP.path}/chats/{found['chatId']}")
    # The event may be over by now (the API then hides it); the request is still there.
    names = await _event_names(s, {found["eventId"]})
    return page(s, "app/request.html", req=found, event={"name": names[found["eventId"]]})


@router.get("/requests/{request_id}/status", operation_id="appRequestStatus")
async def request_status(s: Signed, request_id: int) -> Response:
    """For the waiting page's script: the place in the queue, the wait, the chat."""
    found = await s.api("GET", f"{PAR}/help-requests/{request_id}")
    keys = ("status", "position", "estimatedWaitSeconds", "chatId")
    return JSONResponse({k: found.get(k) for k in keys}, headers={"Cache-Control": "no-store"})


@router.post("/requests/{request_id}/cancel", operation_id="appCancelRequest")
async def cancel_request(request: Request, s: Signed, request_id: int) -> Response:
    await form_of(request)
    found = await s.api("DELETE", f"{PAR}/help-requests/{request_id}")
    target = f"{APP.path}/events/{found['eventId']}" if found else f"{APP.path}/help"
    return redirect(request, APP, target, "Your request is cancelled.")


# -- chats -----------------------------------------------------------------------------------


@router.get("/chats", operation_id="appChats")
async def chats_page(s: Signed) -> Response:
    active = [r for r in await _open_requests(s) if r["status"] == "claimed" and r["chatId"]]
    archived = await s.api("GET", f"{MSG}/participant/chats")
    events = await _event_names(
        s, {r["eventId"] for r in active} | {c["eventId"] for c in archived}
    )
    return page(s, "app/chats.html", active=active, archived=archived, events=events)


async def _event_names(s: Session, ids: set[int]) -> dict[int, str]:
    names = {}
    for event_id in sorted(ids)[:50]:
        try:
            names[event_id] = (await s.api("GET", f"{PAR}/events/{event_id}"))["name"]
        except UpstreamError:
            names[event_id] = f"Event #{event_id}"  # over or gone: the chat stays readable
    return names


@router.get("/chats/{chat_id}", operation_id="appChat")
async def chat_page(s: Signed, chat_id: str) -> Response:
    chat_id = _chat_id(chat_id)
    active = [r for r in await _open_requests(s) if r.get("chatId") == chat_id]
    if active:
        names = await _event_names(s, {active[0]["eventId"]})
        return page(s, "app/chat.html", chat_id=chat_id, ended=False, messages=[],
                    event=names[active[0]["eventId"]],
                    ws_url=Web.of(s.request).ws_url or "")  # fmt: skip
    archived = {c["id"]: c for c in await s.api("GET", f"{MSG}/participant/chats")}
    if chat_id not in archived:
        raise NotFound("There is no such chat.")
    messages = await s.api("GET", f"{MSG}/participant/chats/{chat_id}/messages")
    names = await _event_names(s, {archived[chat_id]["eventId"]})
    return page(s, "app/chat.html", chat_id=chat_id, ended=True, messages=messages,
                event=names[archived[chat_id]["eventId"]], ws_url="")  # fmt: skip


@router.post("/live/token", operation_id="appLiveToken")
async def live_token(request: Request, s: Signed) -> Response:
    return pages.socket_token(request, s)


# -- settings --------------------------------------------------------------------------------


@router.get("/settings", operation_id="appSettings")
async def settings_page(s: Signed) -> Response:
    return page(s, "app/settings.html", values={"phoneNumber": s.user.get("phoneNumber", "")})


async def _settings_change(
    s: Session, method: str, path: str, body: dict[str, Any], errors_key: str
) -> Response | None:
    try:
        await s.api(method, path, json=body)
    except UpstreamError as exc:
        if exc.status_code not in (400, 401):
            raise
        values = {"phoneNumber": s.user.get("phoneNumber", "")}
        return page(s, "app/settings.html", 400, values=values, **{errors_key: exc.messages})
    return None


@router.post("/settings/phone", operation_id="appPhoneSave")
async def phone_save(request: Request, s: Signed) -> Response:
    form = await form_of(request)
    phone = {"phoneNumber": form.get("phoneNumber", "").strip()}
    refused = await _settings_change(s, "PATCH", f"{PAR}/profile", phone, "errors")
    return refused or redirect(request, APP, f"{APP.path}/settings", "Your phone number is saved.")


@router.post("/settings/password", operation_id="appPasswordChange")
async def password_change(request: Request, s: Signed) -> Response:
    def refused(errors: list[str]) -> Response:
        values = {"phoneNumber": s.user.get("phoneNumber", "")}
        return page(s, "app/settings.html", 400, values=values, password_errors=errors)

    # The Participant API answers a wrong current password with 401 (ESME's wording).
    return await pages.change_password(request, s, refused, refusals=(400, 401))


@router.post("/settings/delete", operation_id="appDeleteAccount")
async def delete_account(request: Request, s: Signed) -> Response:
    form = await form_of(request)
    password = {"password": form.get("password", "")}
    refused = await _settings_change(s, "DELETE", f"{PAR}/profile", password, "delete_errors")
    if refused:
        return refused
    response = redirect(request, APP, f"{APP.path}/sign-in", "Your account is deleted.")
    Web.of(request).guard.sign_out(response, APP)
    return response


# -- installable: manifest, service worker, the offline page ---------------------------------


@router.get("/manifest.webmanifest", operation_id="appManifest")
async def manifest() -> Response:
    return JSONResponse(
        {
            "name": "aidpost: help at events",
            "short_name": "aidpost",
            "description": "Ask the event's emergency team for help and chat with them.",
            "start_url": "/app/help",
            "scope": "/app/",
            "display": "standalone",
            "background_color": "#fffbff",
            "theme_color": "#a8281f",
            "icons": [
                {
                    "src": "/web/static/icon.svg",
                    "sizes": "any",
                    "type": "image/svg+xml",
                    "purpose": "any",
                },
                {"src": "/web/static/icon-192.png", "sizes": "192x192", "type": "image/png"},
                {"src": "/web/static/icon-512.png", "sizes": "512x512", "type": "image/png"},
            ],
        },
        media_type="application/manifest+json",
        headers={"Cache-Control": "public, max-age=3600"},
    )


@router.get("/sw.js", operation_id="appServiceWorker")
async def service_worker() -> Response:
    from aidpost.web.static import asset

    found = asset("sw.js")
    assert found is not None
    return Response(
        found[0],
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/app/"},
    )


@router.get("/offline", operation_id="appOffline")
async def offline(request: Request) -> Response:
    # Served by the service worker when offline: the tabs lead to what the phone kept.
    return render(request, APP, "app/offline.html", tabs=True)


async def not_found(request: Request) -> Response:
    """Any other address under /app: a page, not the APIs' JSON."""
    session = None
    with contextlib.suppress(pages.Redirect):
        session = await signed_in(request)
    return render(request, APP, "app/message.html", 404, session=session, title="Not found",
                  errors=["There is no such page."])  # fmt: skip
