"""Who may do what: every Organizer API route against every kind of caller.

Each test builds one world (``world`` fixture) and then loops over its cases, collecting
every mismatch, so a single run reports all of them at once instead of the first one.

Callers:
    superadmin, admin   -- admins; neither previews an agency
    owner, manager, support -- staff of the first agency (which owns the event, issue, ...)
    other_owner         -- owner of a second approved agency (a stranger to the first one)
    revoked             -- owner of an agency that was approved, signed in, then refused
    none, garbage       -- no Authorization header; ``Bearer organizer:abc``

Expected guards (ESME's, plus our preview rule for admins on agency routes):
    admin routes   -> superadmin, admin
    support level  -> owner, manager, support (admins not previewing: 403 "Choose an agency ...")
    manager level  -> owner, manager
    owner level    -> owner
Refusals are 403 ``Forbidden resource``; ids of another agency are 404 (not 200, not 403).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import httpx
import pytest

from tests.conftest import PASSWORD, SUPERADMIN, Api

API_KEY = "organizer-api-key-for-tests"
FORBIDDEN = "Forbidden resource"
PREVIEW = "Choose an agency to preview first"
NOT_APPROVED = "your agency is not approved by administrators"
NEW_PASSWORD = "a-brand-new-password-for-tests"

CALLERS = (
    "superadmin",
    "admin",
    "owner",
    "manager",
    "support",
    "other_owner",
    "revoked",
    "none",
    "garbage",
)
ADMINS = frozenset({"superadmin", "admin"})
STAFF = frozenset({"owner", "manager", "support"})  # the first agency's own people
SUPPORT = STAFF | {"other_owner"}
MANAGER = frozenset({"owner", "manager", "other_owner"})
OWNER = frozenset({"owner", "other_owner"})
SIGNED_IN = ADMINS | SUPPORT
EVERYONE = frozenset(CALLERS)

Ids = dict[str, int]


# -- the world ---------------------------------------------------------------------------------


@dataclass
class World:
    api: Api
    tokens: dict[str, str | None]
    ids: Ids
    emails: dict[str, str]
    problems: list[str] = field(default_factory=list)

    async def call(self, caller: str, method: str, path: str, **kw: Any) -> httpx.Response:
        """One request as ``caller``; any 5xx is a problem whatever the test expected."""
        try:
            r = await self.api.request(method, path, self.tokens[caller], **kw)
        except Exception as exc:  # the app crashed: the client would have seen a 500
            self.problems.append(f"{method} {path} as {caller}: raised {exc!r}"[:400])
            return httpx.Response(500, text=repr(exc))
        if r.status_code >= 500:
            self.problems.append(f"{method} {path} as {caller}: got {r.status_code} {r.text}")
        return r

    def expect(
        self, label: str, r: httpx.Response, status: int, message: str | None = None
    ) -> None:
        """Record a mismatch of status, error shape or (exact) message; 404s must say so."""
        if r.status_code != status:
            self.problems.append(f"{label}: expected {status}, got {r.status_code} {r.text[:200]}")
            return
        if status < 400:
            return
        try:
            body = r.json()
        except ValueError:
            self.problems.append(f"{label}: error body is not JSON: {r.text[:200]}")
            return
        if (
            not isinstance(body, dict)
            or body.get("statusCode") != status
            or body.get("error") != HTTPStatus(status).phrase
        ):
            self.problems.append(f"{label}: not ESME's error shape: {body}")
        elif message is not None and body.get("message") != message:
            self.problems.append(f"{label}: expected message {message!r}, got {body['message']!r}")
        elif status == 404 and "not found" not in str(body.get("message")):
            self.problems.append(f"{label}: 404 without 'not found': {body['message']!r}")

    def assert_clean(self) -> None:
        assert not self.problems, f"{len(self.problems)} mismatches:\n" + "\n".join(self.problems)


def issue_body(api: Api, event_id: int) -> dict[str, Any]:
    return {
        "name": api.unique("Issue"),
        "description": "Lost child at gate B",
        "priority": "high",
        "eventId": event_id,
    }


def comment_body(issue_id: int) -> dict[str, Any]:
    return {"content": "On my way", "issueId": issue_id}


async def created(api: Api, path: str, token: str | None, body: dict[str, Any]) -> int:
    r = await api.request("POST", path, token, json=body)
    assert r.status_code == 201, f"setup POST {path}: {r.status_code} {r.text}"
    new_id: int = r.json()["id"]
    return new_id


async def my_id(api: Api, token: str | None) -> int:
    r = await api.request("GET", "/profile", token)
    assert r.status_code == 200, r.text
    user_id: int = r.json()["id"]
    return user_id


@pytest.fixture
async def world(api: Api) -> World:
    superadmin = await api.superadmin()
    admin_id, admin = await api.add_admin()

    agency_id, owner_email, owner = await api.register_agency()
    manager_body = api.user_body(3)
    manager_id = await created(api, "/agency/users", owner, manager_body)
    manager = await api.sign_in(manager_body["email"])
    support_body = api.user_body(4)
    support_id = await created(api, "/agency/users", owner, support_body)
    support = await api.sign_in(support_body["email"])

    other_agency_id, other_email, other_owner = await api.register_agency()

    # Approved, signed in, with an event; then refused: its tokens must stop working.
    revoked_agency_id, revoked_email, revoked = await api.register_agency()
    _m, revoked_manager = await api.add_user(revoked or "", 3)
    revoked_event = await api.add_event(revoked or "")
    r = await api.request(
        "PATCH",
        f"/admin/agencies/{revoked_agency_id}/verify",
        superadmin,
        json={"approved": False},
    )
    assert r.status_code == 200, r.text

    # Never approved: its owner cannot even sign in.
    expected = {"statusCode": 400, "message": NOT_APPROVED, "error": "Bad Request"}
    _p, pending_email, pending = await api.register_agency(approved=False)
    assert pending is None
    for email in (pending_email, revoked_email):
        r = await api.request("POST", "/auth/sign-in", json={"email": email, "password": PASSWORD})
        assert (r.status_code, r.json()) == (400, expected), (email, r.text)

    event = await api.add_event(owner or "")
    contact_id = await created(api, "/agency/contacts", owner, api.contact_body(event["id"]))
    issue_id = await created(api, "/agency/issues", support, issue_body(api, event["id"]))
    comment_id = await created(api, "/agency/comments", support, comment_body(issue_id))
    r = await api.request("GET", "/agency/changelogs", owner)
    assert r.status_code == 200 and r.json(), r.text
    changelog_id = r.json()[0]["id"]

    return World(
        api=api,
        tokens={
            "superadmin": superadmin,
            "admin": admin,
            "owner": owner,
            "manager": manager,
            "support": support,
            "other_owner": other_owner,
            "revoked": revoked,
            "revoked_manager": revoked_manager,
            "none": None,
            "garbage": "organizer:abc",
        },
        ids={
            "superadmin_id": await my_id(api, superadmin),
            "admin_id": admin_id,
            "owner_id": await my_id(api, owner),
            "manager_id": manager_id,
            "support_id": support_id,
            "agency": agency_id,
            "other_agency": other_agency_id,
            "event": event["id"],
            "revoked_agency": revoked_agency_id,
            "revoked_event": revoked_event["id"],
            "contact": contact_id,
            "issue": issue_id,
            "comment": comment_id,
            "changelog": changelog_id,
        },
        emails={
            "superadmin": SUPERADMIN[0],
            "owner": owner_email,
            "manager": manager_body["email"],
            "support": support_body["email"],
            "other_owner": other_email,
        },
    )


# -- fresh targets for destructive cases (one per caller, made by the first agency) ------------


async def fresh_user(w: World, _caller: str) -> Ids:
    return {"target": await created(w.api, "/agency/users", w.tokens["owner"], w.api.user_body(4))}


async def fresh_event(w: World, _caller: str) -> Ids:
    return {"target": (await w.api.add_event(w.tokens["owner"] or ""))["id"]}


async def fresh_contact(w: World, _caller: str) -> Ids:
    body = w.api.contact_body(w.ids["event"])
    return {"target": await created(w.api, "/agency/contacts", w.tokens["owner"], body)}


async def fresh_issue(w: World, _caller: str) -> Ids:
    body = issue_body(w.api, w.ids["event"])
    return {"target": await created(w.api, "/agency/issues", w.tokens["owner"], body)}


async def fresh_comment(w: World, caller: str) -> Ids:
    """Written by the caller when the caller is staff (only authors may edit or delete)."""
    author = caller if caller in STAFF else "owner"
    body = comment_body(w.ids["issue"])
    return {"target": await created(w.api, "/agency/comments", w.tokens[author], body)}


Fresh = Callable[[World, str], Awaitable[Ids]]
BodyOf = Callable[[World, Ids], Any]


@dataclass(frozen=True)
class Case:
    method: str
    path: str  # formatted with the world's ids (and ``target`` from ``fresh``)
    allowed: frozenset[str]
    ok: int = 200
    body: BodyOf | None = None
    fresh: Fresh | None = None
    foreign: bool = False  # names the first agency's object: a stranger gets 404
    special: tuple[tuple[str, int, str], ...] = ()  # (caller, status, message)

    def expected(self, caller: str) -> tuple[int, str | None]:
        for who, status, message in self.special:
            if who == caller:
                return status, message
        if caller in self.allowed:
            if caller == "other_owner" and self.foreign:
                return 404, None
            return self.ok, None
        if caller in ADMINS and self.allowed <= SUPPORT:
            return 403, PREVIEW  # agency routes: admins must preview an agency first
        return 403, FORBIDDEN


def C(method: str, path: str, allowed: frozenset[str], **kw: Any) -> Case:
    return Case(method, path, allowed, **kw)


CASES: tuple[Case, ...] = (
    # profile
    C("GET", "/profile", SIGNED_IN),
    C("PATCH", "/profile", SIGNED_IN, body=lambda w, i: {"firstName": "Renamed"}),
    C("PATCH", "/profile/set-agency", ADMINS, body=lambda w, i: {}),
    # admin: users
    C("GET", "/admin/users/roles", ADMINS),
    C("GET", "/admin/users", ADMINS),
    C(
        "POST",
        "/admin/users",
        frozenset({"superadmin"}),
        ok=201,
        body=lambda w, i: w.api.user_body(1),
        special=(("admin", 403, "Not allowed to create user with same role or senior"),),
    ),
    C("GET", "/admin/users/{support_id}", ADMINS),
    C("PATCH", "/admin/users/{support_id}", ADMINS, body=lambda w, i: {"lastName": "Edited"}),
    C("DELETE", "/admin/users/{target}", ADMINS, fresh=fresh_user),
    # admin: agencies and changelogs
    C("GET", "/admin/agencies", ADMINS),
    C("GET", "/admin/agencies/{agency}", ADMINS),
    C("PATCH", "/admin/agencies/{agency}/verify", ADMINS, body=lambda w, i: {"approved": True}),
    C("GET", "/admin/changelogs", ADMINS),
    C("GET", "/admin/changelogs?userId={owner_id}", ADMINS),
    C("GET", "/admin/changelogs/{changelog}", ADMINS),
    # agency (registration is public; DELETE /agency: test_delete_agency_is_owner_only)
    C("POST", "/agency", EVERYONE, ok=201, body=lambda w, i: w.api.register_body()),
    C("GET", "/agency", SUPPORT),
    C("PATCH", "/agency", OWNER, body=lambda w, i: {"address": "Other Street 5, Warsaw"}),
    # agency users
    # the role list holds no agency data: admins read it without a preview (as in ESME)
    C("GET", "/agency/users/roles", SUPPORT | ADMINS),
    C("GET", "/agency/users", SUPPORT),
    C("GET", "/agency/users/{support_id}", SUPPORT, foreign=True),
    C("POST", "/agency/users", MANAGER, ok=201, body=lambda w, i: w.api.user_body(4)),
    C(
        "PATCH",
        "/agency/users/{support_id}",
        MANAGER,
        body=lambda w, i: {"firstName": "Edited"},
        foreign=True,
    ),
    C("DELETE", "/agency/users/{target}", MANAGER, fresh=fresh_user, foreign=True),
    # events
    C("GET", "/agency/events", SUPPORT),
    C("POST", "/agency/events", MANAGER, ok=201, body=lambda w, i: w.api.event_body()),
    C("GET", "/agency/events/{event}", SUPPORT, foreign=True),
    C(
        "PATCH",
        "/agency/events/{event}",
        MANAGER,
        body=lambda w, i: {"description": "Updated"},
        foreign=True,
    ),
    C("DELETE", "/agency/events/{target}", MANAGER, fresh=fresh_event, foreign=True),
    # contacts
    C("GET", "/agency/contacts", SUPPORT),
    C("GET", "/agency/contacts?eventId={event}", SUPPORT),
    C(
        "POST",
        "/agency/contacts",
        MANAGER,
        ok=201,
        body=lambda w, i: w.api.contact_body(i["event"]),
        foreign=True,
    ),
    C("GET", "/agency/contacts/{contact}", SUPPORT, foreign=True),
    C(
        "PATCH",
        "/agency/contacts/{contact}",
        MANAGER,
        body=lambda w, i: {"additionalNotes": "Speaks Polish"},
        foreign=True,
    ),
    C("DELETE", "/agency/contacts/{target}", MANAGER, fresh=fresh_contact, foreign=True),
    # issues
    C("GET", "/agency/issues", SUPPORT),
    C("GET", "/agency/issues?eventId={event}", SUPPORT),
    C(
        "POST",
        "/agency/issues",
        SUPPORT,
        ok=201,
        body=lambda w, i: issue_body(w.api, i["event"]),
        foreign=True,
    ),
    C("GET", "/agency/issues/{issue}", SUPPORT, foreign=True),
    C(
        "PATCH",
        "/agency/issues/{issue}",
        SUPPORT,
        body=lambda w, i: {"priority": "medium"},
        foreign=True,
    ),
    C("DELETE", "/agency/issues/{target}", SUPPORT, fresh=fresh_issue, foreign=True),
    # comments
    C("GET", "/agency/comments", SUPPORT),
    C("GET", "/agency/comments?issueId={issue}", SUPPORT),
    C(
        "POST",
        "/agency/comments",
        SUPPORT,
        ok=201,
        body=lambda w, i: comment_body(i["issue"]),
        foreign=True,
    ),
    C("GET", "/agency/comments/{comment}", SUPPORT, foreign=True),
    C(
        "PATCH",
        "/agency/comments/{target}",
        SUPPORT,
        body=lambda w, i: {"content": "Edited"},
        fresh=fresh_comment,
        foreign=True,
    ),
    C("DELETE", "/agency/comments/{target}", SUPPORT, fresh=fresh_comment, foreign=True),
    # agency changelogs
    C("GET", "/agency/changelogs", SUPPORT),
    C("GET", "/agency/changelogs?userId={owner_id}", SUPPORT),
    C("GET", "/agency/changelogs/{changelog}", SUPPORT, foreign=True),
)


async def test_every_organizer_route_is_in_the_matrix(app: Any) -> None:
    """A new route must get a row here (or in the session/agency tests below)."""
    elsewhere = {
        ("POST", "/organizer-api/auth/sign-in"),
        ("POST", "/organizer-api/auth/sign-out"),
        # public; tests/auth/test_password_links.py
        ("POST", "/organizer-api/auth/password-reset"),
        ("POST", "/organizer-api/auth/password-reset/confirm"),
        ("PATCH", "/organizer-api/profile/change-password"),
        ("DELETE", "/organizer-api/agency"),
        ("GET", "/organizer-api/api/events"),
        ("GET", "/organizer-api/api/events/{id}"),
    }
    placeholders = {
        "{support_id}": "{id}",
        "{target}": "{id}",
        "{agency}": "{id}",
        "{changelog}": "{id}",
        "{event}": "{id}",
        "{contact}": "{id}",
        "{issue}": "{id}",
        "{comment}": "{id}",
    }
    covered = set(elsewhere)
    for case in CASES:
        path = "/organizer-api" + case.path.split("?")[0]
        for old, new in placeholders.items():
            path = path.replace(old, new)
        covered.add((case.method, path))
    routes = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/organizer-api/")
        for method in operations
    }
    assert routes - covered == set(), "routes missing from the matrix"
    assert covered - routes == set(), "matrix rows without a route"


async def test_role_matrix(world: World) -> None:
    for case in CASES:
        for caller in CALLERS:
            ids = dict(world.ids)
            if case.fresh is not None:
                ids.update(await case.fresh(world, caller))
            path = case.path.format(**ids)
            kw = {"json": case.body(world, ids)} if case.body is not None else {}
            r = await world.call(caller, case.method, path, **kw)
            status, message = case.expected(caller)
            world.expect(f"{case.method} {path} as {caller}", r, status, message)
    world.assert_clean()


async def test_stranger_gets_404_and_changes_nothing(world: World) -> None:
    """The second agency's owner: 404 for the first agency's ids, none of them in its lists."""
    w = world
    ids = w.ids
    before = {}
    for path in ("/agency/events/{event}", "/agency/contacts/{contact}", "/agency/issues/{issue}"):
        r = await w.call("owner", "GET", path.format(**ids))
        before[path] = r.json()
    probes = [
        ("GET", "/agency/users/{owner_id}", None),
        ("GET", "/agency/users/{manager_id}", None),
        ("PATCH", "/agency/users/{manager_id}", {"firstName": "Hijacked"}),
        ("DELETE", "/agency/users/{manager_id}", None),
        ("GET", "/agency/events/{event}", None),
        ("PATCH", "/agency/events/{event}", {"name": "Hijacked festival"}),
        ("DELETE", "/agency/events/{event}", None),
        ("GET", "/agency/contacts/{contact}", None),
        ("PATCH", "/agency/contacts/{contact}", {"lastName": "Hijacked"}),
        ("DELETE", "/agency/contacts/{contact}", None),
        ("GET", "/agency/issues/{issue}", None),
        ("PATCH", "/agency/issues/{issue}", {"status": "cancelled"}),
        ("DELETE", "/agency/issues/{issue}", None),
        ("GET", "/agency/comments/{comment}", None),
        ("PATCH", "/agency/comments/{comment}", {"content": "Hijacked"}),
        ("DELETE", "/agency/comments/{comment}", None),
        ("GET", "/agency/changelogs/{changelog}", None),
        ("POST", "/agency/contacts", w.api.contact_body(ids["event"])),
        ("POST", "/agency/issues", issue_body(w.api, ids["event"])),
        ("POST", "/agency/comments", comment_body(ids["issue"])),
    ]
    for method, template, body in probes:
        path = template.format(**ids)
        kw = {"json": body} if body is not None else {}
        r = await w.call("other_owner", method, path, **kw)
        w.expect(f"{method} {path} as other_owner", r, 404)
    # lists are agency-scoped: filtering by the first agency's ids finds nothing
    for path, key in (
        ("/agency/events", "event"),
        ("/agency/contacts?eventId={event}", "contact"),
        ("/agency/issues?eventId={event}", "issue"),
        ("/agency/comments?issueId={issue}", "comment"),
        ("/agency/users", "owner_id"),
        ("/agency/changelogs?userId={owner_id}", "changelog"),
    ):
        r = await w.call("other_owner", "GET", path.format(**ids))
        w.expect(f"GET {path} as other_owner", r, 200)
        if r.status_code == 200 and ids[key] in {row["id"] for row in r.json()}:
            w.problems.append(f"GET {path} as other_owner lists the first agency's {key}")
    r = await w.call("other_owner", "GET", "/agency")
    if r.status_code == 200 and r.json()["id"] != ids["other_agency"]:
        w.problems.append(f"GET /agency as other_owner: {r.json()}")
    # nothing of the first agency changed
    for path, old in before.items():
        r = await w.call("owner", "GET", path.format(**ids))
        w.expect(f"GET {path} as owner after the stranger", r, 200)
        if r.status_code == 200 and r.json() != old:
            w.problems.append(f"{path} changed by the stranger: {old} -> {r.json()}")
    for path in ("/agency/users/{manager_id}", "/agency/comments/{comment}"):
        r = await w.call("owner", "GET", path.format(**ids))
        w.expect(f"GET {path} as owner after the stranger", r, 200)
    w.assert_clean()


async def test_seniority(world: World) -> None:
    w = world
    api = w.api
    ids = w.ids
    manager2_id = await created(api, "/agency/users", w.tokens["owner"], api.user_body(3))
    refused = "Not allowed to {} user with same role or senior"

    async def check(
        caller: str, method: str, path: str, body: Any, status: int, msg: str | None = None
    ) -> None:
        kw = {"json": body} if body is not None else {}
        r = await w.call(caller, method, path, **kw)
        w.expect(f"{method} {path} {body} as {caller}", r, status, msg)

    # a manager creates only support staff, and changes or removes only support staff
    for role in (0, 1, 2, 3):
        await check(
            "manager", "POST", "/agency/users", api.user_body(role), 403, refused.format("create")
        )
    for target in (ids["owner_id"], manager2_id, ids["manager_id"]):
        await check(
            "manager",
            "PATCH",
            f"/agency/users/{target}",
            {"firstName": "Demoted"},
            403,
            refused.format("update"),
        )
        await check(
            "manager", "DELETE", f"/agency/users/{target}", None, 403, refused.format("delete")
        )
    await check("manager", "POST", "/agency/users", api.user_body(4), 201)
    # a manager cannot promote support staff to manager or higher
    for role in (0, 1, 2, 3):
        await check(
            "manager",
            "PATCH",
            f"/agency/users/{ids['support_id']}",
            {"role": role},
            403,
            refused.format("update"),
        )
    await check("manager", "PATCH", f"/agency/users/{ids['support_id']}", {"firstName": "Sue"}, 200)

    # an owner: no second owner, no admins, no promotion to owner or admin
    for role in (0, 1, 2):
        await check(
            "owner", "POST", "/agency/users", api.user_body(role), 403, refused.format("create")
        )
        await check(
            "owner",
            "PATCH",
            f"/agency/users/{ids['support_id']}",
            {"role": role},
            403,
            refused.format("update"),
        )
        await check(
            "owner",
            "PATCH",
            f"/agency/users/{ids['support_id']}",
            {"role": str(role)},
            403,
            refused.format("update"),
        )
    await check(
        "owner",
        "PATCH",
        f"/agency/users/{ids['owner_id']}",
        {"firstName": "Me"},
        403,
        refused.format("update"),
    )
    await check(
        "owner", "DELETE", f"/agency/users/{ids['owner_id']}", None, 403, refused.format("delete")
    )
    r = await w.call("owner", "GET", f"/agency/users/{ids['support_id']}")
    if r.status_code != 200 or r.json()["role"] != 4:
        w.problems.append(f"support user's role changed: {r.text}")
    await check("owner", "PATCH", f"/agency/users/{manager2_id}", {"role": 4}, 200)
    await check("owner", "PATCH", f"/agency/users/{manager2_id}", {"role": 3}, 200)

    # admins: only the superadmin creates admins; admins cannot touch admins or the superadmin
    other_admin = await created(api, "/admin/users", w.tokens["superadmin"], api.user_body(1))
    await check("admin", "POST", "/admin/users", api.user_body(1), 403, refused.format("create"))
    await check("admin", "POST", "/admin/users", api.user_body(0), 403, refused.format("create"))
    await check(
        "superadmin", "POST", "/admin/users", api.user_body(0), 403, refused.format("create")
    )
    for target in (other_admin, ids["admin_id"], ids["superadmin_id"]):
        await check(
            "admin",
            "PATCH",
            f"/admin/users/{target}",
            {"firstName": "Edited"},
            403,
            refused.format("update"),
        )
        await check(
            "admin", "DELETE", f"/admin/users/{target}", None, 403, refused.format("delete")
        )
    await check(
        "superadmin",
        "PATCH",
        f"/admin/users/{ids['superadmin_id']}",
        {"firstName": "Edited"},
        403,
        refused.format("update"),
    )
    await check("superadmin", "PATCH", f"/admin/users/{other_admin}", {"firstName": "Ed"}, 200)
    await check("admin", "PATCH", f"/admin/users/{ids['owner_id']}", {"firstName": "Ed"}, 200)
    await check("superadmin", "DELETE", f"/admin/users/{other_admin}", None, 200)
    # the admin that was refused is still there and still an admin
    r = await w.call("superadmin", "GET", f"/admin/users/{ids['admin_id']}")
    if r.status_code != 200 or r.json()["role"] != 1:
        w.problems.append(f"admin changed: {r.text}")
    w.assert_clean()


async def test_sign_out_and_change_password(world: World) -> None:
    """Both need a valid, non-refused token; both end every earlier token of the caller."""
    w = world
    old_passwords = {"superadmin": SUPERADMIN[1]}
    for caller in CALLERS:
        allowed = caller in SIGNED_IN
        body = {
            "oldPassword": old_passwords.get(caller, PASSWORD),
            "newPassword": NEW_PASSWORD,
            "confirmNewPassword": NEW_PASSWORD,
        }
        r = await w.call(caller, "PATCH", "/profile/change-password", json=body)
        label = f"PATCH /profile/change-password as {caller}"
        w.expect(label, r, 200 if allowed else 403, None if allowed else FORBIDDEN)
        # the refused owner's manager (a second token of that agency) tries to sign out
        out_caller = "revoked_manager" if caller == "revoked" else caller
        if not allowed:
            r = await w.call(out_caller, "POST", "/auth/sign-out")
            w.expect(f"POST /auth/sign-out as {out_caller}", r, 403, FORBIDDEN)
            continue
        r = await w.call(caller, "GET", "/profile")
        w.expect(f"GET /profile as {caller} after the password change", r, 403, FORBIDDEN)
        if caller not in w.emails:
            continue
        r = await w.api.request(
            "POST", "/auth/sign-in", json={"email": w.emails[caller], "password": NEW_PASSWORD}
        )
        w.expect(f"sign-in of {caller} with the new password", r, 200)
        if r.status_code != 200:
            continue
        token = r.json()["token"]
        r = await w.api.request("POST", "/auth/sign-out", token)
        w.expect(f"POST /auth/sign-out as {caller}", r, 200)
        r = await w.api.request("GET", "/profile", token)
        w.expect(f"GET /profile as {caller} after sign-out", r, 403, FORBIDDEN)
    w.assert_clean()


async def test_delete_agency_is_owner_only(world: World) -> None:
    w = world
    ids = w.ids
    # refused callers first, then each owner deletes their own agency
    order = [c for c in CALLERS if c not in OWNER] + ["other_owner", "owner"]
    for caller in order:
        r = await w.call(caller, "DELETE", "/agency")
        if caller in OWNER:
            w.expect(f"DELETE /agency as {caller}", r, 200)
            own = ids["agency"] if caller == "owner" else ids["other_agency"]
            if r.status_code == 200 and r.json().get("id") != own:
                w.problems.append(f"DELETE /agency as {caller} removed {r.json()}")
        elif caller in ADMINS:
            w.expect(f"DELETE /agency as {caller}", r, 403, PREVIEW)
        else:
            w.expect(f"DELETE /agency as {caller}", r, 403, FORBIDDEN)
    for agency in (ids["agency"], ids["other_agency"]):
        r = await w.call("superadmin", "GET", f"/admin/agencies/{agency}")
        w.expect(f"GET /admin/agencies/{agency} after its deletion", r, 404)
    for caller in ("owner", "manager", "support", "other_owner"):
        r = await w.call(caller, "GET", "/profile")
        w.expect(f"GET /profile as deleted {caller}", r, 403, FORBIDDEN)
    r = await w.api.request(
        "POST", "/auth/sign-in", json={"email": w.emails["manager"], "password": PASSWORD}
    )
    w.expect("sign-in of the deleted manager", r, 400, "invalid email or password")
    r = await w.api.request(
        "GET", f"/api/events/{ids['event']}", headers={"Authorization": f"Bearer {API_KEY}"}
    )
    w.expect("GET /api/events/{event} after its agency was deleted", r, 404)
    w.assert_clean()


async def test_internal_events_api_needs_the_key(world: World) -> None:
    w = world
    api = w.api
    ids = w.ids
    key = {"Authorization": f"Bearer {API_KEY}"}
    problems = w.problems

    async def get(path: str, **kw: Any) -> httpx.Response:
        r = await api.client.get("/organizer-api" + path, **kw)
        if r.status_code >= 500:
            problems.append(f"GET {path} {kw}: {r.status_code} {r.text}")
        return r

    for path in ("/api/events", f"/api/events/{ids['event']}"):
        unauthorized = [
            ({}, "Unauthorized"),
            ({"headers": {"Authorization": "Bearer"}}, "Unauthorized"),
            ({"headers": {"Authorization": f"Basic {API_KEY}"}}, "Unauthorized"),
            ({"headers": {"Authorization": "Bearer wrong-key"}}, "invalid api key"),
            ({"headers": {"Authorization": f"Bearer {API_KEY}x"}}, "invalid api key"),
            ({"headers": {"Authorization": f"Bearer {w.tokens['owner']}"}}, "invalid api key"),
            ({"params": {"access_token": "wrong-key"}}, "invalid api key"),
        ]
        for kw, message in unauthorized:
            r = await get(path, **kw)
            label = f"GET {path} {kw}"
            if r.status_code != 401:
                problems.append(f"{label}: expected 401, got {r.status_code} {r.text}")
            elif r.json().get("message") != message or r.json().get("statusCode") != 401:
                problems.append(f"{label}: expected 401 {message!r}, got {r.text}")
        for kw in (
            {"headers": key},
            {"headers": {"Authorization": f"bearer {API_KEY}"}},
            {"params": {"access_token": API_KEY}},
        ):
            r = await get(path, **kw)
            if r.status_code != 200:
                problems.append(f"GET {path} {kw}: expected 200, got {r.status_code} {r.text}")

    # only events of approved agencies
    r = await get("/api/events", headers=key)
    listed = {e["id"] for e in r.json()} if r.status_code == 200 else set()
    if ids["event"] not in listed or ids["revoked_event"] in listed:
        problems.append(f"GET /api/events lists {sorted(listed)}; ids: {ids}")
    r = await get(f"/api/events/{ids['event']}", headers=key)
    if r.status_code != 200 or r.json().get("id") != ids["event"]:
        problems.append(f"GET /api/events/{ids['event']}: {r.status_code} {r.text}")
    for params in ({}, {"access_token": API_KEY}):
        r = await get(f"/api/events/{ids['revoked_event']}", headers=key, params=params)
        expected = {
            "statusCode": 404,
            "message": f"Event with id {ids['revoked_event']} not found",
            "error": "Not Found",
        }
        if r.status_code != 404 or r.json() != expected:
            problems.append(f"GET /api/events/<refused agency's event>: {r.text}")
    # approving the refused agency again shows its event again
    r = await w.call(
        "superadmin",
        "PATCH",
        f"/admin/agencies/{ids['revoked_agency']}/verify",
        json={"approved": True},
    )
    w.expect("approve the refused agency again", r, 200)
    r = await get("/api/events", headers=key)
    if r.status_code != 200 or ids["revoked_event"] not in {e["id"] for e in r.json()}:
        problems.append(f"GET /api/events after approving again: {r.text}")
    r = await get(f"/api/events/{ids['revoked_event']}", headers=key)
    if r.status_code != 200:
        problems.append(f"GET /api/events/<approved again>: {r.status_code} {r.text}")
    w.assert_clean()
