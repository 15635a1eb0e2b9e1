"""The console's lists and forms of an agency's records (users, events, contacts, …), each
declared once: its API path, its fields and its columns. One set of routes serves them all:
list, new, edit, delete (behind a confirmation page), each a thin call to the API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from aidpost.web.console import (
    NEW_PASSWORD,
    ORG,
    PERSON_FIELDS,
    ROLE_NAMES,
    Signed,
    can_manage,
    page,
)
from aidpost.web.forms import Field, body, values
from aidpost.web.pages import Session, form_of, redirect
from aidpost.web.security import CONSOLE
from aidpost.web.upstream import UpstreamError

Extra = Callable[[Session, dict[str, Any]], Awaitable[dict[str, Any]]]


async def _nothing(_s: Session, _entity: dict[str, Any]) -> dict[str, Any]:
    return {}


async def _same(s: Session, fields: tuple[Field, ...]) -> tuple[Field, ...]:
    return fields


@dataclass(frozen=True)
class Resource:
    slug: str
    api: str
    singular: str
    plural: str
    fields: tuple[Field, ...]
    columns: tuple[tuple[str, str], ...]
    # The parent whose id a new record needs (contacts: their event), as (field, slug).
    parent: tuple[str, str] | None = None
    writable: Callable[[Session], bool] = can_manage
    # Fields whose options depend on who asks (the roles one may give).
    fields_for: Callable[[Session, tuple[Field, ...]], Awaitable[tuple[Field, ...]]] = _same
    # More for the edit page (an event's contacts).
    extra: Extra = _nothing
    # A new record's fields filled from the address (an issue from a chat).
    preset: Callable[[Request], dict[str, str]] = field(default=lambda _r: {})
    template: str = "console/record.html"
    label: Callable[[dict[str, Any]], str] = field(default=lambda e: str(e.get("name", "")))

    def url(self, entity_id: int | None = None) -> str:
        base = f"{CONSOLE.path}/{self.slug}"
        return base if entity_id is None else f"{base}/{entity_id}"

    def back(self, entity: dict[str, Any]) -> str:
        """Where a saved or deleted record leads: its parent, else the list."""
        if self.parent is not None:
            parent = entity.get(self.parent[0])
            return f"{CONSOLE.path}/{self.parent[1]}" + (f"/{parent}" if parent else "")
        return self.url()


def _cell(column: str, entity: dict[str, Any]) -> str:
    value = entity.get(column)
    if column == "role" and isinstance(value, int):
        return ROLE_NAMES.get(value, str(value))
    if column in ("status", "priority") and isinstance(value, str):
        return LABELS.get(value, value)
    if column == "fullName":
        return full_name(entity)
    return "" if value is None else str(value)


def register(router: APIRouter, r: Resource) -> None:
    async def list_page(s: Signed) -> Response:
        rows = await s.api("GET", r.api)
        return page(s, "console/list.html", r=r, rows=rows, cell=_cell, writable=r.writable(s))

    async def new_page(s: Signed, request: Request) -> Response:
        preset = r.preset(request)
        if r.parent is not None:
            preset[r.parent[0]] = request.query_params.get(r.parent[0], "")
        return await _form(s, r, None, preset, [])

    async def create(request: Request, s: Signed) -> Response:
        form = await form_of(request)
        fields = await r.fields_for(s, r.fields)
        payload = body(fields, form, False)
        if r.parent is not None:
            payload[r.parent[0]] = _int(form.get(r.parent[0], ""))
        try:
            made = await s.api("POST", r.api, json=payload)
        except UpstreamError as exc:
            if exc.status_code != 400:
                raise
            return await _form(s, r, None, form, exc.messages, 400)
        return redirect(request, CONSOLE, r.back(made), f"The {r.singular} is saved.")

    async def edit_page(s: Signed, entity_id: int) -> Response:
        entity = await s.api("GET", f"{r.api}/{entity_id}")
        return await _form(s, r, entity, values(r.fields, entity), [])

    async def update(request: Request, s: Signed, entity_id: int) -> Response:
        form = await form_of(request)
        fields = await r.fields_for(s, r.fields)
        try:
            saved = await s.api("PATCH", f"{r.api}/{entity_id}", json=body(fields, form, True))
        except UpstreamError as exc:
            if exc.status_code != 400:
                raise
            entity = await s.api("GET", f"{r.api}/{entity_id}")
            return await _form(s, r, entity, form, exc.messages, 400)
        return redirect(
            request,
            CONSOLE,
            r.url(entity_id) if r.parent is None else r.back(saved),
            f"The {r.singular} is saved.",
        )

    async def delete_page(s: Signed, entity_id: int) -> Response:
        entity = await s.api("GET", f"{r.api}/{entity_id}")
        return page(s, "console/delete.html", r=r, entity=entity, name=r.label(entity))

    async def delete(request: Request, s: Signed, entity_id: int) -> Response:
        await form_of(request)
        entity = await s.api("GET", f"{r.api}/{entity_id}")
        await s.api("DELETE", f"{r.api}/{entity_id}")
        return redirect(request, CONSOLE, r.back(entity), f"The {r.singular} is deleted.")

    op = r.slug.title().replace("-", "").replace("/", "")
    if r.parent is None:
        router.add_api_route(f"/{r.slug}", list_page, methods=["GET"], operation_id=f"console{op}")
    router.add_api_route(
        f"/{r.slug}/new", new_page, methods=["GET"], operation_id=f"console{op}New"
    )
    router.add_api_route(f"/{r.slug}/new", create, methods=["POST"], operation_id=f"console{op}Add")
    router.add_api_route(
        f"/{r.slug}/{{entity_id}}", edit_page, methods=["GET"], operation_id=f"console{op}Edit"
    )
    router.add_api_route(
        f"/{r.slug}/{{entity_id}}", update, methods=["POST"], operation_id=f"console{op}Save"
    )
    router.add_api_route(
        f"/{r.slug}/{{entity_id}}/delete",
        delete_page,
        methods=["GET"],
        operation_id=f"console{op}DeletePage",
    )
    router.add_api_route(
        f"/{r.slug}/{{entity_id}}/delete",
        delete,
        methods=["POST"],
        operation_id=f"console{op}Delete",
    )


def _int(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        return text


async def _form(
    s: Session,
    r: Resource,
    entity: dict[str, Any] | None,
    shown: dict[str, Any],
    errors: list[str],
    status_code: int = 200,
) -> Response:
    fields = await r.fields_for(s, r.fields)
    extra = await r.extra(s, entity) if entity is not None else {}
    return page(
        s,
        r.template,
        status_code,
        r=r,
        entity=entity,
        fields=fields,
        values=shown,
        errors=errors,
        writable=r.writable(s),
        editing=entity is not None,
        **extra,
    )


# -- the records -----------------------------------------------------------------------------


async def _roles(s: Session, fields: tuple[Field, ...]) -> tuple[Field, ...]:
    """The seniority rule: one gives only roles junior to one's own."""
    mine = s.user["role"]
    options = tuple((str(k), n) for k, n in ROLE_NAMES.items() if k > max(mine, 1))
    return tuple(replace(f, options=options) if f.name == "role" else f for f in fields)


def full_name(person: dict[str, Any]) -> str:
    return f"{person.get('firstName', '')} {person.get('lastName', '')}".strip()


def _people(slug: str, api: str, singular: str, plural: str, role: Field, **more: Any) -> Resource:
    """Staff accounts: the agency's users, or the platform's administrators."""
    return Resource(
        slug=slug,
        api=api,
        singular=singular,
        plural=plural,
        fields=(
            Field("email", "Email", "email", maxlength=320, autocomplete="off", on_edit=False),
            *PERSON_FIELDS,
            role,
            *NEW_PASSWORD,
        ),
        columns=(
            ("id", "ID"),
            ("fullName", "Name"),
            ("email", "Email"),
            ("phoneNumber", "Phone"),
            ("role", "Role"),
        ),
        label=full_name,
        **more,
    )


USERS = _people(
    "users", f"{ORG}/agency/users", "user", "Users",
    Field("role", "Role", "select", integer=True), fields_for=_roles,
)  # fmt: skip

EVENT_FIELDS = (
    Field("name", "Name", maxlength=200),
    Field("description", "Description", "textarea", maxlength=2000),
    Field("address", "Address", maxlength=400),
    Field("lat", "Latitude", "number", hint="-90 to 90; or pick on the map"),
    Field("lng", "Longitude", "number", hint="-180 to 180"),
    Field("timeStart", "Starts (UTC)", "datetime"),
    Field("timeEnd", "Ends (UTC)", "datetime"),
)
CONTACT_FIELDS = (
    Field("firstName", "First name", maxlength=100),
    Field("lastName", "Last name", maxlength=100),
    Field("email", "Email", "email", maxlength=320),
    Field("phoneNumber", "Phone number", "tel", maxlength=30),
    Field("additionalNotes", "Notes", "textarea", required=False, maxlength=2000),
)


async def _event_extra(s: Session, event: dict[str, Any]) -> dict[str, Any]:
    contacts = await s.api("GET", f"{ORG}/agency/contacts", params={"eventId": event["id"]})
    return {"contacts": contacts}


EVENTS = Resource(
    slug="events",
    api=f"{ORG}/agency/events",
    singular="event",
    plural="Events",
    fields=EVENT_FIELDS,
    columns=(
        ("id", "ID"),
        ("name", "Name"),
        ("address", "Address"),
        ("timeStart", "Starts"),
        ("timeEnd", "Ends"),
    ),
    extra=_event_extra,
    template="console/event.html",
)

CONTACTS = Resource(
    slug="contacts",
    api=f"{ORG}/agency/contacts",
    singular="contact",
    plural="Contacts",
    fields=CONTACT_FIELDS,
    columns=(),
    parent=("eventId", "events"),
    label=full_name,
)

ISSUE_STATUSES = (
    ("to_do", "To do"),
    ("in_progress", "In progress"),
    ("resolved", "Resolved"),
    ("cancelled", "Cancelled"),
)
PRIORITIES = (("low", "Low"), ("medium", "Medium"), ("high", "High"))
LABELS = dict(ISSUE_STATUSES + PRIORITIES)


async def _issue_fields(s: Session, fields: tuple[Field, ...]) -> tuple[Field, ...]:
    events = await s.api("GET", f"{ORG}/agency/events")
    options = tuple((str(e["id"]), e["name"]) for e in events)
    return tuple(replace(f, options=options) if f.name == "eventId" else f for f in fields)


async def _issue_extra(s: Session, issue: dict[str, Any]) -> dict[str, Any]:
    comments = await s.api("GET", f"{ORG}/agency/comments", params={"issueId": issue["id"]})
    users = {u["id"]: u for u in await s.api("GET", f"{ORG}/agency/users")}
    event = await s.api("GET", f"{ORG}/agency/events/{issue['eventId']}")
    return {"comments": comments, "people": users, "event": event, "me": s.user["id"]}


def _anyone(_s: Session) -> bool:
    return True  # support staff and up; the API still decides


def _from_chat(request: Request) -> dict[str, str]:
    """An issue started from a chat: its event, and a link to the chat's transcript."""
    q = request.query_params
    out = {"eventId": q.get("eventId", "")[:12]}
    chat = q.get("chatId", "")
    if len(chat) == 24 and all(c in "0123456789abcdef" for c in chat):
        out["description"] = f"From live support chat {chat}.\nTranscript: /console/archives/{chat}"
        out["name"] = "Help request follow-up"
    return out


ISSUES = Resource(
    slug="issues",
    api=f"{ORG}/agency/issues",
    singular="issue",
    plural="Issues",
    fields=(
        Field("name", "Title", maxlength=200),
        Field("eventId", "Event", "select", integer=True, on_edit=False),
        Field("priority", "Priority", "select", options=PRIORITIES),
        Field("status", "Status", "select", options=ISSUE_STATUSES, on_create=False),
        Field("description", "Description", "textarea", maxlength=20000),
    ),
    columns=(
        ("id", "ID"),
        ("name", "Title"),
        ("priority", "Priority"),
        ("status", "Status"),
        ("timeCreated", "Created"),
    ),
    writable=_anyone,
    fields_for=_issue_fields,
    extra=_issue_extra,
    preset=_from_chat,
    template="console/issue.html",
)

COMMENTS = Resource(
    slug="comments",
    api=f"{ORG}/agency/comments",
    singular="comment",
    plural="Comments",
    fields=(Field("content", "Comment", "textarea", maxlength=2000),),
    columns=(),
    parent=("issueId", "issues"),
    writable=_anyone,
    label=lambda e: "comment",
)

ADMINS = _people(
    "admin/users", f"{ORG}/admin/users", "administrator", "Administrators",
    Field("role", "Role", "select", integer=True, options=(("1", "Admin"),), on_edit=False),
    writable=lambda s: s.user["role"] == 0,
)  # fmt: skip

RESOURCES = (USERS, EVENTS, CONTACTS, ISSUES, COMMENTS, ADMINS)
