"""The organizer console (``/console``): ESME's Organizer UI as server-rendered pages.

Every page calls the Organizer API with the signed-in staff member's token, which lives
only in an HttpOnly cookie; the API decides what each role may do, and the pages show
only what the role can use.
"""

from __future__ import annotations

import contextlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from aidpost.core.errors import BadRequest, NotFound
from aidpost.core.validation import ascii_digits
from aidpost.web import pages
from aidpost.web.forms import Field, body, values
from aidpost.web.pages import Redirect, Session, Web, form_of, redirect, render, session_of
from aidpost.web.pages import page_route as _page_route
from aidpost.web.security import CONSOLE
from aidpost.web.upstream import UpstreamError

ORG = "/organizer-api"
SUPERADMIN, ADMIN, OWNER, MANAGER, SUPPORT = 0, 1, 2, 3, 4
ROLE_NAMES = {
    SUPERADMIN: "Superadmin",
    ADMIN: "Admin",
    OWNER: "Agency owner",
    MANAGER: "Agency manager",
    SUPPORT: "Agency support",
}

router = APIRouter(
    prefix="/console",
    tags=["organizer console"],
    include_in_schema=False,
    route_class=_page_route(CONSOLE, "console/message.html"),
)


# -- session ---------------------------------------------------------------------------------


async def signed_in(request: Request) -> Session:
    session = await session_of(request, CONSOLE)
    session.extra["admin"] = session.user["role"] in (SUPERADMIN, ADMIN)
    session.extra["role_name"] = ROLE_NAMES.get(session.user["role"], "")
    return session


Signed = Annotated[Session, Depends(signed_in)]


def page(session: Session, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return render(session.request, CONSOLE, template, status_code, session=session, **context)


def is_admin(s: Session) -> bool:
    return bool(s.extra["admin"])


def can_manage(s: Session) -> bool:
    """Owner and manager (and admins previewing an agency) write the agency's resources."""
    return s.user["role"] in (SUPERADMIN, ADMIN, OWNER, MANAGER)


def in_agency(s: Session) -> bool:
    return s.user.get("agencyId") is not None


@router.get("", operation_id="consoleHome")
@router.get("/", operation_id="consoleHomeSlash")
async def home(request: Request, s: Signed) -> Response:
    if is_admin(s) and not in_agency(s):
        return redirect(request, CONSOLE, f"{CONSOLE.path}/admin/agencies")
    return redirect(request, CONSOLE, f"{CONSOLE.path}/{'live' if can_chat(s) else 'events'}")


# -- sign in, register, sign out ------------------------------------------------------------


@router.get("/sign-in", operation_id="consoleSignInPage")
async def sign_in_page(request: Request) -> Response:
    return render(request, CONSOLE, "console/sign_in.html", values={})


@router.post("/sign-in", operation_id="consoleSignIn")
async def sign_in(request: Request) -> Response:
    return await pages.sign_in(request, CONSOLE, "console/sign_in.html")


@router.post("/sign-out", operation_id="consoleSignOut")
async def sign_out(request: Request) -> Response:
    return await pages.sign_out(request, CONSOLE)


AGENCY_FIELDS = (
    Field("name", "Agency name", maxlength=200, autocomplete="organization"),
    Field("address", "Address", maxlength=400, autocomplete="street-address"),
    Field("website", "Website", "url", hint="https://…", autocomplete="url"),
)
PERSON_FIELDS = (
    Field("firstName", "First name", maxlength=100, autocomplete="given-name"),
    Field("lastName", "Last name", maxlength=100, autocomplete="family-name"),
    Field("phoneNumber", "Phone number", "tel", maxlength=30, hint="+48 600 700 800",
          autocomplete="tel"),
)  # fmt: skip
NEW_PASSWORD = (
    Field("password", "Password", "password", maxlength=128, hint="16 to 128 characters",
          autocomplete="new-password", on_edit=False),
    Field("confirmPassword", "Repeat the password", "password", maxlength=128,
          autocomplete="new-password", on_edit=False),
)  # fmt: skip
OWNER_FIELDS = (
    Field("email", "Email", "email", maxlength=320, autocomplete="email"),
    *PERSON_FIELDS,
    *NEW_PASSWORD,
)


@router.get("/register", operation_id="consoleRegisterPage")
async def register_page(request: Request) -> Response:
    return render(
        request, CONSOLE, "console/register.html",
        agency_fields=AGENCY_FIELDS, owner_fields=OWNER_FIELDS,
    )  # fmt: skip


@router.post("/register", operation_id="consoleRegister")
async def register(request: Request) -> Response:
    form = await form_of(request)
    agency = body(
        AGENCY_FIELDS, {k[7:]: v for k, v in form.items() if k.startswith("agency.")}, False
    )
    owner = body(OWNER_FIELDS, {k[6:]: v for k, v in form.items() if k.startswith("owner.")}, False)
    try:
        await Web.of(request).upstream.call(
            "POST", f"{ORG}/agency", json={"agency": agency, "owner": owner},
            client_ip=pages.client_ip(request),
        )  # fmt: skip
    except UpstreamError as exc:
        if exc.status_code >= 500:
            raise
        kept = {k: v for k, v in form.items() if "assword" not in k}
        return render(
            request, CONSOLE, "console/register.html", 400, errors=exc.messages, values=kept,
            agency_fields=AGENCY_FIELDS, owner_fields=OWNER_FIELDS,
        )  # fmt: skip
    return redirect(
        request, CONSOLE, f"{CONSOLE.path}/sign-in",
        "Your agency is registered. You can sign in once an administrator approves it.",
    )  # fmt: skip


# -- profile ---------------------------------------------------------------------------------


@router.get("/profile", operation_id="consoleProfile")
async def profile(s: Signed) -> Response:
    return page(
        s, "console/profile.html", fields=PERSON_FIELDS, values=values(PERSON_FIELDS, s.user)
    )


@router.post("/profile", operation_id="consoleProfileSave")
async def profile_save(request: Request, s: Signed) -> Response:
    form = await form_of(request)
    try:
        await s.api("PATCH", f"{ORG}/profile", json=body(PERSON_FIELDS, form, True))
    except UpstreamError as exc:
        if exc.status_code != 400:
            raise
        return page(s, "console/profile.html", 400, fields=PERSON_FIELDS, values=form,
                    errors=exc.messages)  # fmt: skip
    return redirect(request, CONSOLE, f"{CONSOLE.path}/profile", "Your details are saved.")


@router.post("/profile/password", operation_id="consolePasswordChange")
async def password_change(request: Request, s: Signed) -> Response:
    def refused(errors: list[str]) -> Response:
        return page(s, "console/profile.html", 400, fields=PERSON_FIELDS,
                    values=values(PERSON_FIELDS, s.user), password_errors=errors)  # fmt: skip

    return await pages.change_password(request, s, refused)


# -- the agency ------------------------------------------------------------------------------


async def _agency(s: Session, status_code: int = 200, **context: Any) -> Response:
    agency = await s.api("GET", f"{ORG}/agency")
    context.setdefault("values", values(AGENCY_FIELDS, agency))
    return page(s, "console/agency.html", status_code, agency=agency, fields=AGENCY_FIELDS,
                owner=s.user["role"] == OWNER, **context)  # fmt: skip


@router.get("/agency", operation_id="consoleAgency")
async def agency_page(s: Signed) -> Response:
    return await _agency(s)


@router.post("/agency", operation_id="consoleAgencySave")
async def agency_save(request: Request, s: Signed) -> Response:
    form = await form_of(request)
    try:
        await s.api("PATCH", f"{ORG}/agency", json=body(AGENCY_FIELDS, form, True))
    except UpstreamError as exc:
        if exc.status_code != 400:
            raise
        return await _agency(s, 400, values=form, errors=exc.messages)
    return redirect(request, CONSOLE, f"{CONSOLE.path}/agency", "The agency is saved.")


@router.post("/agency/delete", operation_id="consoleAgencyDelete")
async def agency_delete(request: Request, s: Signed) -> Response:
    form = await form_of(request)
    agency = await s.api("GET", f"{ORG}/agency")
    if form.get("confirm", "").strip() != agency["name"]:
        return await _agency(s, 400, delete_errors=["Type the agency's name exactly to delete it."])
    await s.api("DELETE", f"{ORG}/agency")
    response = redirect(request, CONSOLE, f"{CONSOLE.path}/sign-in", "The agency is deleted.")
    Web.of(request).guard.sign_out(response, CONSOLE)
    return response


# -- admin: agencies and preview -------------------------------------------------------------


@router.get("/admin/agencies", operation_id="consoleAdminAgencies")
async def admin_agencies(s: Signed) -> Response:
    agencies = await s.api("GET", f"{ORG}/admin/agencies")
    waiting = [a for a in agencies if not a["approved"]]
    return page(s, "console/admin_agencies.html", agencies=agencies, waiting=len(waiting))


@router.get("/admin/agencies/{agency_id}", operation_id="consoleAdminAgency")
async def admin_agency(s: Signed, agency_id: int) -> Response:
    agency = await s.api("GET", f"{ORG}/admin/agencies/{agency_id}")
    return page(s, "console/admin_agency.html", agency=agency)


@router.post("/admin/agencies/{agency_id}/verify", operation_id="consoleAdminVerify")
async def admin_verify(request: Request, s: Signed, agency_id: int) -> Response:
    form = await form_of(request)
    approved = form.get("approved") == "true"
    await s.api("PATCH", f"{ORG}/admin/agencies/{agency_id}/verify", json={"approved": approved})
    notice = "The agency is approved." if approved else "The agency's approval is revoked."
    return redirect(request, CONSOLE, f"{CONSOLE.path}/admin/agencies/{agency_id}", notice)


@router.post("/admin/agencies/{agency_id}/preview", operation_id="consoleAdminPreview")
async def admin_preview(request: Request, s: Signed, agency_id: int) -> Response:
    await form_of(request)
    await s.api("PATCH", f"{ORG}/profile/set-agency", json={"agencyId": agency_id})
    return redirect(request, CONSOLE, f"{CONSOLE.path}/events", "You are previewing the agency.")


@router.post("/preview/leave", operation_id="consoleLeavePreview")
async def leave_preview(request: Request, s: Signed) -> Response:
    await form_of(request)
    await s.api("PATCH", f"{ORG}/profile/set-agency", json={"agencyId": None})
    return redirect(request, CONSOLE, f"{CONSOLE.path}/admin/agencies", "Preview ended.")


async def not_found(request: Request) -> Response:
    """Any other address under /console: a page, not the APIs' JSON."""
    session = None
    with contextlib.suppress(Redirect):
        session = await signed_in(request)
    return render(request, CONSOLE, "console/message.html", 404, session=session,
                  title="Not found", errors=["There is no such page."])  # fmt: skip


# -- changelogs: who changed what, with each change shown against the one before ------------


def _value(entry: dict[str, Any] | None) -> dict[str, Any]:
    if entry is None:
        return {}
    value = entry.get("valueAfter")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {"value": value}
    return value if isinstance(value, dict) else {}


def diff(entries: list[dict[str, Any]], entry: dict[str, Any]) -> list[dict[str, Any]]:
    """Each field of the record before and after this change (the entry before it of the
    same record holds the value before)."""
    earlier = [
        e
        for e in entries
        if e["entityClass"] == entry["entityClass"]
        and e["entityId"] == entry["entityId"]
        and e["id"] < entry["id"]
    ]
    before = _value(max(earlier, key=lambda e: e["id"]) if earlier else None)
    after = _value(entry)
    rows = []
    for key in dict.fromkeys([*before, *after]):
        old, new = before.get(key), after.get(key)
        rows.append(
            {"field": key, "before": _show(old), "after": _show(new), "changed": old != new}
        )
    return rows


def _show(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _filters(request: Request, names: tuple[str, ...]) -> dict[str, int]:
    out = {}
    for name in names:
        raw = request.query_params.get(name, "").strip()
        if raw:
            if not ascii_digits(raw) or len(raw) > 12:
                raise BadRequest(f"{name} must be a number")
            out[name] = int(raw)
    return out


async def _changelogs(
    request: Request, s: Session, api: str, base: str, names: tuple[str, ...]
) -> Response:
    filters = _filters(request, names)
    entries = await s.api("GET", api, params=filters or None)
    return page(s, "console/changelogs.html", entries=list(reversed(entries)), base=base,
                filters=filters, names=names)  # fmt: skip


async def _changelog(s: Session, api: str, base: str, changelog_id: int) -> Response:
    entry = await s.api("GET", f"{api}/{changelog_id}")
    # The change before it is in the same agency (the admin list filters by agency).
    scope = {"agencyId": entry["agencyId"]} if "/admin/" in api and entry["agencyId"] else None
    entries = await s.api("GET", api, params=scope)
    return page(s, "console/changelog.html", entry=entry, rows=diff(entries, entry), base=base)


@router.get("/changelogs", operation_id="consoleChangelogs")
async def changelogs(request: Request, s: Signed) -> Response:
    return await _changelogs(request, s, f"{ORG}/agency/changelogs", "/console/changelogs",
                             ("userId",))  # fmt: skip


@router.get("/changelogs/{changelog_id}", operation_id="consoleChangelog")
async def changelog(s: Signed, changelog_id: int) -> Response:
    return await _changelog(s, f"{ORG}/agency/changelogs", "/console/changelogs", changelog_id)


@router.get("/admin/changelogs", operation_id="consoleAdminChangelogs")
async def admin_changelogs(request: Request, s: Signed) -> Response:
    return await _changelogs(request, s, f"{ORG}/admin/changelogs", "/console/admin/changelogs",
                             ("userId", "agencyId"))  # fmt: skip


@router.get("/admin/changelogs/{changelog_id}", operation_id="consoleAdminChangelog")
async def admin_changelog(s: Signed, changelog_id: int) -> Response:
    return await _changelog(s, f"{ORG}/admin/changelogs", "/console/admin/changelogs",
                            changelog_id)  # fmt: skip


# -- live support and the archives -----------------------------------------------------------


def can_chat(s: Session) -> bool:
    """Owner, manager and support chat; administrators cannot (ESME's rule)."""
    return s.user["role"] in (OWNER, MANAGER, SUPPORT)


@router.get("/live", operation_id="consoleLive")
async def live(s: Signed) -> Response:
    if not can_chat(s):
        return page(
            s,
            "console/message.html",
            403,
            title="Not for administrators",
            errors=["Live support is for the agency's staff; administrators cannot chat."],
        )
    web = Web.of(s.request)
    return page(s, "console/live.html", ws_url=web.ws_url or "")


@router.post("/live/token", operation_id="consoleLiveToken")
async def live_token(request: Request, s: Signed) -> Response:
    return pages.socket_token(request, s)


@router.get("/live/events/{event_id}", operation_id="consoleLiveEvent")
async def live_event(s: Signed, event_id: int) -> Response:
    """An event and its emergency contacts, beside the conversation."""
    event = await s.api("GET", f"{ORG}/agency/events/{event_id}")
    contacts = await s.api("GET", f"{ORG}/agency/contacts", params={"eventId": event_id})
    return JSONResponse(
        {"event": event, "contacts": contacts}, headers={"Cache-Control": "no-store"}
    )


MSG = "/messenger-api"


@router.get("/archives", operation_id="consoleArchives")
async def archives(s: Signed) -> Response:
    chats = await s.api("GET", f"{MSG}/agency/chats")
    return page(s, "console/archives.html", chats=chats)


@router.get("/archives/{chat_id}", operation_id="consoleArchive")
async def archive(s: Signed, chat_id: str) -> Response:
    if not (len(chat_id) == 24 and all(c in "0123456789abcdef" for c in chat_id)):
        raise NotFound("There is no such chat.")
    chats = await s.api("GET", f"{MSG}/agency/chats")
    chat = next((c for c in chats if c["id"] == chat_id), None)
    if chat is None:
        raise NotFound("There is no such ended chat in this agency.")
    messages = await s.api("GET", f"{MSG}/agency/chats/{chat_id}/messages")
    located = [m for m in messages if m.get("lat") is not None and m.get("lng") is not None]
    where = (located[-1]["lat"], located[-1]["lng"]) if located else (
        chat.get("latStart"), chat.get("lngStart"))  # fmt: skip
    return page(s, "console/archive.html", chat=chat, messages=messages, where=where)
