"""Bad input on every Organizer API route that takes a body, a path id or a query string.

Every route gets: malformed JSON, a non-object body, wrong types and bad values for each
field, missing required fields, unknown properties, every length limit exceeded by one,
null in PATCH bodies, a body over 1 MiB, and (where it has one) bad path ids and bad query
parameters. Expected: 400 in ESME's shape (validation failures with a list of messages that
name the field), 413 for big bodies, and never a 5xx (``Checker.send`` records any 5xx).

Each test collects every mismatch and reports them all at once.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import httpx
import pytest

from tests.conftest import SUPERADMIN, Api

API_KEY = "organizer-api-key-for-tests"
MIB = 1 << 20
JSON = {"Content-Type": "application/json"}

# wrong values, by kind of field (each must give 400 with a message naming the field)
TEXT = (12345, True, ["x"], {"a": 1}, "")  # IsString + IsNotEmpty
NOTES = (12345, True, ["x"])  # IsString, may be empty
PASSWORD_FIELD = (12345, ["x"], "")
EMAIL = (12345, "not-an-email", "")
PHONE = (48123456789, "12345", "")
URL = (12345, "not a url", "")
INT_ID = ("abc", True, "", [1], {"a": 1})  # ESME parses ids with parseInt: "12" is fine
LAT = (True, "north", 91, -90.5, [52.2])
LNG = (True, "east", 181, -180.5, [21.0])
DATE = (12345, True, "not a date", "2026-13-45T00:00:00Z")
PRIORITY = (5, "urgent", "", True)
STATUS = (5, "done", "", True)
ROLE = ("abc", True, 7, -1, 1.5)
BOOL = ("yes", "true", 1, 0)
OBJECT = ("x", 12345, True, [])


# -- plumbing ----------------------------------------------------------------------------------


@dataclass
class Checker:
    api: Api
    tokens: dict[str, str | None]
    ids: dict[str, int]
    problems: list[str] = field(default_factory=list)
    sent: int = 0

    async def send(self, caller: str | None, method: str, path: str, **kw: Any) -> httpx.Response:
        """One request; a 5xx is always a problem, whatever the case expected."""
        token = self.tokens[caller] if caller else None
        headers = dict(kw.pop("headers", {}))
        if caller == "key":
            headers["Authorization"] = f"Bearer {API_KEY}"
            token = None
        self.sent += 1
        try:
            r = await self.api.request(method, path, token, headers=headers, **kw)
        except Exception as exc:  # the app crashed: the client would have seen a 500
            self.problems.append(f"{method} {path} {_short(kw)}: raised {exc!r}"[:400])
            return httpx.Response(500, text=repr(exc))
        if r.status_code >= 500:
            self.problems.append(f"{method} {path} {_short(kw)}: {r.status_code} {r.text[:300]}")
        return r

    def error(self, label: str, r: httpx.Response, status: int) -> Any:
        """Check status and ESME's error shape; return ``message`` (or None on a mismatch)."""
        if r.status_code != status:
            self.problems.append(f"{label}: expected {status}, got {r.status_code} {r.text[:300]}")
            return None
        try:
            body = r.json()
        except ValueError:
            self.problems.append(f"{label}: body is not JSON: {r.text[:200]}")
            return None
        phrase = HTTPStatus(status).phrase
        if (
            not isinstance(body, dict)
            or set(body) != {"statusCode", "message", "error"}
            or body["statusCode"] != status
            or (status != 413 and body["error"] != phrase)
        ):
            self.problems.append(f"{label}: not ESME's error shape: {r.text[:300]}")
            return None
        return body["message"]

    def messages(self, label: str, r: httpx.Response) -> list[str] | None:
        """A 400 whose message is a list of strings (class-validator's shape)."""
        message = self.error(label, r, 400)
        if message is None:
            return None
        if not isinstance(message, list) or not all(isinstance(m, str) for m in message):
            self.problems.append(f"{label}: message is not a list of strings: {message!r}")
            return None
        return message

    def names(self, label: str, r: httpx.Response, name: str) -> None:
        """A 400 with a message list in which some message names ``name``."""
        message = self.messages(label, r)
        if message is not None and not any(mentions(m, name) for m in message):
            self.problems.append(f"{label}: no message names {name!r}: {message}")

    def says(self, label: str, r: httpx.Response, text: str) -> None:
        """A 400 with a message list that contains exactly ``text``."""
        message = self.messages(label, r)
        if message is not None and text not in message:
            self.problems.append(f"{label}: expected {text!r} in {message}")

    def assert_clean(self) -> None:
        assert self.sent > 0
        assert not self.problems, f"{len(self.problems)} mismatches:\n" + "\n".join(self.problems)


def mentions(message: str, name: str) -> bool:
    """``name`` (e.g. ``eventId`` or ``owner.email``) appears as a whole field path."""
    return re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", message) is not None


def _short(kw: dict[str, Any]) -> str:
    text = repr(kw.get("json", kw.get("content", kw.get("params", ""))))
    return text if len(text) < 120 else text[:117] + "..."


def set_path(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``body`` with ``a.b`` set to ``value``."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in body.items()}
    *parents, last = path.split(".")
    target = out
    for p in parents:
        target = target[p]
    target[last] = value
    return out


def drop_path(body: dict[str, Any], path: str) -> dict[str, Any]:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in body.items()}
    *parents, last = path.split(".")
    target = out
    for p in parents:
        target = target[p]
    del target[last]
    return out


def too_long(name: str, limit: int) -> Any:
    """A value of ``limit + 1`` characters that is otherwise of the right kind."""
    leaf = name.rsplit(".", 1)[-1]
    n = limit + 1
    if leaf == "email":
        return "a" * (n - len("@example.com")) + "@example.com"
    if leaf == "phoneNumber":
        return "+48" + "1" * (n - 3)
    if leaf == "website":
        return "https://" + "a" * (n - len("https://.com")) + ".com"
    return "x" * n


def long_text(limit: int) -> str:
    return "x" * limit


# -- the world ---------------------------------------------------------------------------------


@pytest.fixture
async def checker(api: Api) -> AsyncIterator[Checker]:
    superadmin = await api.superadmin()
    _admin_id, admin = await api.add_admin()
    agency_id, _email, owner = await api.register_agency()
    support_id, support = await api.add_user(owner or "", 4)
    event = await api.add_event(owner or "")
    r = await api.request("POST", "/agency/contacts", owner, json=api.contact_body(event["id"]))
    assert r.status_code == 201, r.text
    contact_id = r.json()["id"]
    issue = {"name": "Lost child", "description": "At gate B", "priority": "high"}
    r = await api.request("POST", "/agency/issues", owner, json={**issue, "eventId": event["id"]})
    assert r.status_code == 201, r.text
    issue_id = r.json()["id"]
    r = await api.request(
        "POST", "/agency/comments", owner, json={"content": "On it", "issueId": issue_id}
    )
    assert r.status_code == 201, r.text
    comment_id = r.json()["id"]
    r = await api.request("GET", "/agency/changelogs", owner)
    assert r.status_code == 200 and r.json(), r.text
    yield Checker(
        api,
        tokens={
            "superadmin": superadmin,
            "admin": admin,
            "owner": owner,
            "support": support,
            "key": None,  # the internal API's key, sent by ``send``
        },
        ids={
            "agency": agency_id,
            "support_id": support_id,
            "event": event["id"],
            "contact": contact_id,
            "issue": issue_id,
            "comment": comment_id,
            "changelog": r.json()[0]["id"],
        },
    )


# -- routes with a body ------------------------------------------------------------------------

Make = Callable[[Checker], dict[str, Any]]


@dataclass(frozen=True)
class BodyRoute:
    method: str
    path: str  # formatted with the checker's ids
    caller: str | None  # who sends it: someone the route would serve
    valid: Make
    fields: dict[str, tuple[Any, ...]]  # field path -> wrong values
    limits: dict[str, int] = field(default_factory=dict)  # field path -> max length
    minimums: dict[str, int] = field(default_factory=dict)  # field path -> min length
    extra: tuple[str, ...] = ("foo",)  # properties that must not exist (may be nested)
    patch: bool = False  # every field optional, none nullable
    optional: bool = False  # every field optional and nullable (set-agency)
    paired: dict[str, str] = field(default_factory=dict)  # password -> its confirmation

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


def user_fields(role: Any) -> dict[str, tuple[Any, ...]]:
    return {
        "email": EMAIL,
        "password": PASSWORD_FIELD,
        "confirmPassword": (12345, ["x"]),
        "firstName": TEXT,
        "lastName": TEXT,
        "phoneNumber": PHONE,
        "role": role,
    }


USER_LIMITS = {"email": 320, "password": 128, "firstName": 100, "lastName": 100, "phoneNumber": 30}
PROFILE_FIELDS = {"firstName": TEXT, "lastName": TEXT, "phoneNumber": PHONE}
PROFILE_LIMITS = {"firstName": 100, "lastName": 100, "phoneNumber": 30}
EVENT_FIELDS = {
    "name": TEXT,
    "description": TEXT,
    "address": TEXT,
    "lat": LAT,
    "lng": LNG,
    "timeStart": DATE,
    "timeEnd": DATE,
}
EVENT_LIMITS = {"name": 200, "description": 2000, "address": 400}
CONTACT_FIELDS = {
    "firstName": TEXT,
    "lastName": TEXT,
    "email": EMAIL,
    "phoneNumber": PHONE,
    "additionalNotes": NOTES,
}
CONTACT_LIMITS = {
    "firstName": 100,
    "lastName": 100,
    "email": 320,
    "phoneNumber": 30,
    "additionalNotes": 2000,
}
# the change-password body carries a wrong (but well-formed) old password, so that a body
# the app wrongly lets through cannot change the password and end the caller's token
WRONG_OLD = "not-the-old-password-at-all"
NEW = "a-brand-new-password-for-tests"

ROUTES: tuple[BodyRoute, ...] = (
    BodyRoute(
        "POST",
        "/auth/sign-in",
        None,
        lambda c: {"email": SUPERADMIN[0], "password": SUPERADMIN[1]},
        {"email": EMAIL, "password": PASSWORD_FIELD},
        limits={"email": 320, "password": 128},
        minimums={"password": 16},
    ),
    BodyRoute(
        "POST",
        "/auth/password-reset",
        None,
        lambda c: {"email": "nobody-at-all@example.com"},
        {"email": EMAIL},
        limits={"email": 320},
    ),
    BodyRoute(
        "POST",
        "/auth/password-reset/confirm",
        None,
        # well-formed, refused by the service (no such token), not by validation
        lambda c: {"token": "no-such-token", "password": NEW, "confirmPassword": NEW},
        {"token": TEXT, "password": PASSWORD_FIELD, "confirmPassword": (12345, ["x"])},
        limits={"token": 200, "password": 128},
        minimums={"password": 16},
        paired={"password": "confirmPassword"},
    ),
    BodyRoute(
        "PATCH",
        "/profile",
        "owner",
        lambda c: {"firstName": "Olga"},
        PROFILE_FIELDS,
        limits=PROFILE_LIMITS,
        extra=("foo", "email", "role", "agencyId"),
        patch=True,
    ),
    BodyRoute(
        "PATCH",
        "/profile/change-password",
        "support",
        lambda c: {"oldPassword": WRONG_OLD, "newPassword": NEW, "confirmNewPassword": NEW},
        {"oldPassword": PASSWORD_FIELD, "newPassword": PASSWORD_FIELD, "confirmNewPassword": NOTES},
        limits={"oldPassword": 128, "newPassword": 128},
        minimums={"oldPassword": 16, "newPassword": 16},
        paired={"newPassword": "confirmNewPassword"},
    ),
    BodyRoute(
        "PATCH",
        "/profile/set-agency",
        "admin",
        lambda c: {},
        {"agencyId": ("abc", "1", True, 1.5, [1])},
        extra=("foo", "approved"),
        optional=True,
    ),
    BodyRoute(
        "POST",
        "/admin/users",
        "superadmin",
        lambda c: c.api.user_body(1),
        user_fields(ROLE),
        limits=USER_LIMITS,
        minimums={"password": 16},
        extra=("foo", "agencyId", "id"),
        paired={"password": "confirmPassword"},
    ),
    BodyRoute(
        "PATCH",
        "/admin/users/{support_id}",
        "superadmin",
        lambda c: {"firstName": "Ula"},
        PROFILE_FIELDS,
        limits=PROFILE_LIMITS,
        extra=("foo", "email", "role", "agencyId"),
        patch=True,
    ),
    BodyRoute(
        "PATCH",
        "/admin/agencies/{agency}/verify",
        "superadmin",
        lambda c: {"approved": True},
        {"approved": BOOL},
        extra=("foo", "name"),
        patch=True,
    ),
    BodyRoute(
        "POST",
        "/agency",
        None,
        lambda c: c.api.register_body(),
        {
            "agency": OBJECT,
            "owner": OBJECT,
            "agency.name": TEXT,
            "agency.address": TEXT,
            "agency.website": URL,
            "owner.email": EMAIL,
            "owner.password": PASSWORD_FIELD,
            "owner.confirmPassword": (12345, ["x"]),
            "owner.firstName": TEXT,
            "owner.lastName": TEXT,
            "owner.phoneNumber": PHONE,
        },
        limits={
            "agency.name": 200,
            "agency.address": 400,
            "agency.website": 400,
            "owner.email": 320,
            "owner.password": 128,
            "owner.firstName": 100,
            "owner.lastName": 100,
            "owner.phoneNumber": 30,
        },
        minimums={"owner.password": 16},
        extra=("foo", "agency.foo", "owner.foo", "agency.approved", "owner.role"),
        paired={"owner.password": "owner.confirmPassword"},
    ),
    BodyRoute(
        "PATCH",
        "/agency",
        "owner",
        lambda c: {"address": "Main Street 1, Warsaw"},
        {"name": TEXT, "address": TEXT, "website": URL},
        limits={"name": 200, "address": 400, "website": 400},
        extra=("foo", "approved", "id"),
        patch=True,
    ),
    BodyRoute(
        "POST",
        "/agency/users",
        "owner",
        lambda c: c.api.user_body(4),
        user_fields(ROLE),
        limits=USER_LIMITS,
        minimums={"password": 16},
        extra=("foo", "agencyId", "id"),
        paired={"password": "confirmPassword"},
    ),
    BodyRoute(
        "PATCH",
        "/agency/users/{support_id}",
        "owner",
        lambda c: {"firstName": "Ula"},
        {**PROFILE_FIELDS, "role": ROLE},
        limits=PROFILE_LIMITS,
        extra=("foo", "email", "agencyId", "password"),
        patch=True,
    ),
    BodyRoute(
        "POST",
        "/agency/events",
        "owner",
        lambda c: c.api.event_body(),
        EVENT_FIELDS,
        limits=EVENT_LIMITS,
        extra=("foo", "agencyId", "id"),
    ),
    BodyRoute(
        "PATCH",
        "/agency/events/{event}",
        "owner",
        lambda c: {"description": "Open-air music festival"},
        EVENT_FIELDS,
        limits=EVENT_LIMITS,
        extra=("foo", "agencyId", "id"),
        patch=True,
    ),
    BodyRoute(
        "POST",
        "/agency/contacts",
        "owner",
        lambda c: c.api.contact_body(c.ids["event"]),
        {**CONTACT_FIELDS, "eventId": INT_ID},
        limits=CONTACT_LIMITS,
        extra=("foo", "agencyId", "id"),
    ),
    BodyRoute(
        "PATCH",
        "/agency/contacts/{contact}",
        "owner",
        lambda c: {"additionalNotes": "Speaks Polish"},
        CONTACT_FIELDS,
        limits=CONTACT_LIMITS,
        extra=("foo", "eventId", "agencyId"),
        patch=True,
    ),
    BodyRoute(
        "POST",
        "/agency/issues",
        "owner",
        lambda c: {
            "name": c.api.unique("Issue"),
            "description": "Lost child at gate B",
            "priority": "low",
            "eventId": c.ids["event"],
        },
        {"name": TEXT, "description": TEXT, "priority": PRIORITY, "eventId": INT_ID},
        limits={"name": 200, "description": 20000},
        extra=("foo", "status", "authorId", "agencyId"),
    ),
    BodyRoute(
        "PATCH",
        "/agency/issues/{issue}",
        "owner",
        lambda c: {"priority": "high"},
        {"name": TEXT, "description": TEXT, "status": STATUS, "priority": PRIORITY},
        limits={"name": 200, "description": 20000},
        extra=("foo", "eventId", "authorId", "timeClosed"),
        patch=True,
    ),
    BodyRoute(
        "POST",
        "/agency/comments",
        "owner",
        lambda c: {"content": "On my way", "issueId": c.ids["issue"]},
        {"content": TEXT, "issueId": INT_ID},
        limits={"content": 2000},
        extra=("foo", "authorId", "agencyId"),
    ),
    BodyRoute(
        "PATCH",
        "/agency/comments/{comment}",
        "owner",
        lambda c: {"content": "Edited"},
        {"content": TEXT},
        limits={"content": 2000},
        extra=("foo", "issueId", "authorId"),
        patch=True,
    ),
)


async def test_every_route_with_a_body_is_covered(app: Any) -> None:
    ours = {(r.method, "/organizer-api" + re.sub(r"\{\w+\}", "{id}", r.path)) for r in ROUTES}
    with_body = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/organizer-api/")
        for method, operation in operations.items()
        if "requestBody" in operation
    }
    assert with_body == ours


async def test_body_of_wrong_shape(checker: Checker) -> None:
    c = checker
    for route in ROUTES:
        await _body_of_wrong_shape(c, route)
    c.assert_clean()


async def _body_of_wrong_shape(c: Checker, route: BodyRoute) -> None:
    path = route.path.format(**c.ids)
    send = route.method, path

    # the valid body passes validation (so the cases below fail for their own reason);
    # the change-password body is refused by the service (wrong old password), not validation
    r = await c.send(route.caller, *send, json=route.valid(c))
    if r.status_code == 400 and isinstance(r.json().get("message"), list):
        c.problems.append(f"{route.label}: the valid body is refused: {r.text[:300]}")

    for raw in (b'{"a":', b"{", b"{'a': 1}", b'{"a": 1,}', b"nul", b'{"a": "\\x"}'):
        r = await c.send(route.caller, *send, content=raw, headers=JSON)
        message = c.error(f"{route.label} malformed {raw!r}", r, 400)
        if message is not None and not message:
            c.problems.append(f"{route.label} malformed {raw!r}: empty message")
    deep = b"[" * 100_000 + b"]" * 100_000
    r = await c.send(route.caller, *send, content=deep, headers=JSON)
    c.error(f"{route.label} 100000 nested arrays", r, 400)

    for value in ([], [route.valid(c)], "text", 12345, True):
        r = await c.send(route.caller, *send, json=value)
        c.messages(f"{route.label} body {value!r}"[:120], r)
    r = await c.send(route.caller, *send, content=b"null", headers=JSON)
    c.error(f"{route.label} body null", r, 400)

    if not route.patch:
        r = await c.send(route.caller, *send, content=b"", headers=JSON)
        c.error(f"{route.label} empty body", r, 400)

    big = b'{"name": "' + b"x" * MIB + b'"}'
    r = await c.send(route.caller, *send, content=big, headers=JSON)
    c.error(f"{route.label} body over 1 MiB", r, 413)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        for _ in range(17):
            yield b"x" * 65536
        yield b'"}'

    r = await c.send(route.caller, *send, content=chunks(), headers=JSON)
    c.error(f"{route.label} chunked body over 1 MiB (no Content-Length)", r, 413)


async def test_bad_fields(checker: Checker) -> None:
    c = checker
    for route in ROUTES:
        await _bad_fields(c, route)
    c.assert_clean()


async def _bad_fields(c: Checker, route: BodyRoute) -> None:
    path = route.path.format(**c.ids)
    send = route.method, path

    def body_with(name: str, value: Any) -> dict[str, Any]:
        if route.patch:
            return {name: value}
        body = set_path(route.valid(c), name, value)
        if name in route.paired and isinstance(value, str):
            body = set_path(body, route.paired[name], value)  # only the length is wrong
        return body

    for name, values in route.fields.items():
        for value in values:
            r = await c.send(route.caller, *send, json=body_with(name, value))
            c.names(f"{route.label} {name}={value!r}"[:160], r, name)
    for name, limit in route.limits.items():
        value = too_long(name, limit)
        r = await c.send(route.caller, *send, json=body_with(name, value))
        c.names(f"{route.label} {name} of {len(value)} characters", r, name)
    for name, minimum in route.minimums.items():
        value = "p" * (minimum - 1)
        r = await c.send(route.caller, *send, json=body_with(name, value))
        c.names(f"{route.label} {name} of {len(value)} characters", r, name)
    for name in route.extra:
        body = set_path(route.valid(c), name, "surplus")
        r = await c.send(route.caller, *send, json=body)
        parent, _, leaf = name.rpartition(".")
        expected = f"{parent + '.' if parent else ''}property {leaf} should not exist"
        c.says(f"{route.label} unknown {name}", r, expected)
    if route.patch:
        for name in route.fields:
            r = await c.send(route.caller, *send, json={name: None})
            c.names(f"{route.label} {name}=null", r, name)
    elif not route.optional:
        for name in route.fields:
            r = await c.send(route.caller, *send, json=drop_path(route.valid(c), name))
            c.names(f"{route.label} without {name}", r, name)
            r = await c.send(route.caller, *send, json=set_path(route.valid(c), name, None))
            c.names(f"{route.label} {name}=null", r, name)


async def test_text_at_the_limit_is_accepted(checker: Checker) -> None:
    """The limits are inclusive: exactly ``limit`` characters is fine."""
    c = checker
    cases = [
        ("/agency/events/{event}", "name", 200),
        ("/agency/events/{event}", "description", 2000),
        ("/agency/events/{event}", "address", 400),
        ("/agency/contacts/{contact}", "firstName", 100),
        ("/agency/contacts/{contact}", "additionalNotes", 2000),
        ("/agency/issues/{issue}", "name", 200),
        ("/agency/issues/{issue}", "description", 20000),
        ("/agency/comments/{comment}", "content", 2000),
        ("/agency", "name", 200),
        ("/agency", "address", 400),
        ("/profile", "lastName", 100),
    ]
    for template, name, limit in cases:
        path = template.format(**c.ids)
        r = await c.send("owner", "PATCH", path, json={name: long_text(limit)})
        if r.status_code != 200 or r.json().get(name) != long_text(limit):
            c.problems.append(f"PATCH {path} {name} of {limit}: {r.status_code} {r.text[:200]}")
    c.assert_clean()


# -- path ids and query strings ----------------------------------------------------------------

ID_ROUTES: tuple[tuple[str, str, str, dict[str, Any] | None], ...] = (
    ("GET", "/admin/users/{}", "superadmin", None),
    ("PATCH", "/admin/users/{}", "superadmin", {"firstName": "Ula"}),
    ("DELETE", "/admin/users/{}", "superadmin", None),
    ("GET", "/admin/agencies/{}", "superadmin", None),
    ("PATCH", "/admin/agencies/{}/verify", "superadmin", {"approved": True}),
    ("GET", "/admin/changelogs/{}", "superadmin", None),
    ("GET", "/agency/users/{}", "owner", None),
    ("PATCH", "/agency/users/{}", "owner", {"firstName": "Ula"}),
    ("DELETE", "/agency/users/{}", "owner", None),
    ("GET", "/agency/events/{}", "owner", None),
    ("PATCH", "/agency/events/{}", "owner", {"description": "x"}),
    ("DELETE", "/agency/events/{}", "owner", None),
    ("GET", "/agency/contacts/{}", "owner", None),
    ("PATCH", "/agency/contacts/{}", "owner", {"additionalNotes": "x"}),
    ("DELETE", "/agency/contacts/{}", "owner", None),
    ("GET", "/agency/issues/{}", "owner", None),
    ("PATCH", "/agency/issues/{}", "owner", {"priority": "low"}),
    ("DELETE", "/agency/issues/{}", "owner", None),
    ("GET", "/agency/comments/{}", "owner", None),
    ("PATCH", "/agency/comments/{}", "owner", {"content": "x"}),
    ("DELETE", "/agency/comments/{}", "owner", None),
    ("GET", "/agency/changelogs/{}", "owner", None),
    ("GET", "/api/events/{}", "key", None),
)
BAD_IDS = ("abc", "1.5", "99999999999999", "2147483648", "1%20OR%201=1", "%F0%9F%98%80")


async def test_every_route_with_an_id_is_covered(app: Any) -> None:
    ours = {(m, "/organizer-api" + p.replace("{}", "{id}")) for m, p, _c, _b in ID_ROUTES}
    with_id = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/organizer-api/") and "{id}" in path
        for method in operations
    }
    assert with_id == ours


async def test_bad_path_ids(checker: Checker) -> None:
    c = checker
    for method, template, caller, body in ID_ROUTES:
        for bad in BAD_IDS:
            path = template.format(bad)
            kw = {"json": body} if body is not None else {}
            r = await c.send(caller, method, path, **kw)
            message = c.error(f"{method} {path}", r, 400)
            if message is not None and message != ["id must be an integer number"]:
                c.problems.append(f"{method} {path}: message {message!r}")
        # a well-formed id that does not exist is a 404, not a 400 or a 5xx
        r = await c.send(caller, method, template.format(2147483647), **kw)
        c.error(f"{method} {template.format(2147483647)}", r, 404)
    c.assert_clean()


QUERY_ROUTES: tuple[tuple[str, str, dict[str, tuple[str, ...]]], ...] = (
    ("/admin/changelogs", "superadmin", {"userId": (), "agencyId": ()}),
    ("/agency/contacts", "owner", {"eventId": ()}),
    ("/agency/issues", "owner", {"eventId": ()}),
    ("/agency/comments", "owner", {"issueId": ()}),
    ("/agency/changelogs", "owner", {"userId": ()}),
    ("/api/events", "key", {"query": ("",), "from": ("yesterday", "2026-13-01"), "to": ("x",)}),
)
BAD_INT_PARAMS = ("abc", "1.5", "", "99999999999999", "1e3", "true")


async def test_bad_query_strings(checker: Checker) -> None:
    c = checker
    for path, caller, params in QUERY_ROUTES:
        for name, bad_values in params.items():
            values = bad_values or BAD_INT_PARAMS
            for value in values:
                r = await c.send(caller, "GET", path, params={name: value})
                c.names(f"GET {path}?{name}={value}", r, name)
        for unknown in ("foo", "agencyid", "eventId" if "eventId" not in params else "userId"):
            r = await c.send(caller, "GET", path, params={unknown: "1"})
            c.says(f"GET {path}?{unknown}=1", r, f"property {unknown} should not exist")
        # a good query string still works
        good = {name: "1" for name in params if name not in ("query", "from", "to")}
        r = await c.send(caller, "GET", path, params=good)
        if r.status_code != 200:
            c.problems.append(f"GET {path} {good}: {r.status_code} {r.text[:200]}")
    r = await c.send(
        "key", "GET", "/api/events", params={"from": "2026-01-01T00:00:00Z", "to": "2027-01-01"}
    )
    if r.status_code != 200 or c.ids["event"] not in {e["id"] for e in r.json()}:
        c.problems.append(f"GET /api/events?from&to: {r.status_code} {r.text[:200]}")
    c.assert_clean()


# -- strange but valid text --------------------------------------------------------------------

UNICODE_NAME = "Fête de la Musique 🎶🎸 — Zürich/東京/مرحبا ŻÓŁW"


async def test_unicode_and_emoji_round_trip(checker: Checker) -> None:
    c = checker
    api = c.api
    # an agency and its owner
    body = api.register_body()
    body["agency"]["name"] = "Fundacja Żółć 🚑 救援 " + api.unique("x")
    body["owner"]["firstName"] = "Zoë 👩🏽‍⚕️"
    body["owner"]["lastName"] = "Ñandú-Łukasiewicz"
    r = await c.send(None, "POST", "/agency", json=body)
    if r.status_code != 201 or r.json()["name"] != body["agency"]["name"]:
        c.problems.append(f"POST /agency with unicode: {r.status_code} {r.text[:300]}")
    else:
        r = await c.send("superadmin", "GET", f"/admin/agencies/{r.json()['id']}")
        if r.json()["name"] != body["agency"]["name"]:
            c.problems.append(f"agency name did not round-trip: {r.text}")
    # an event, through its own GET, the list and the internal API
    event = api.event_body(
        name=UNICODE_NAME + " " + api.unique("x"),
        # fullwidth letters, a combining accent, a ZWJ emoji sequence
        description="Bring 🧴 and 💧; \uff26\uff35\uff2c\uff2c; e\u0301; "
        "\U0001f3f3\ufe0f\u200d\U0001f308",
        address="ul. Świętokrzyska 1, Warszawa 🇵🇱",
    )
    r = await c.send("owner", "POST", "/agency/events", json=event)
    if r.status_code != 201:
        c.problems.append(f"POST /agency/events with unicode: {r.status_code} {r.text[:300]}")
        c.assert_clean()
    event_id = r.json()["id"]
    for caller, path in (
        ("owner", f"/agency/events/{event_id}"),
        ("key", f"/api/events/{event_id}"),
    ):
        r = await c.send(caller, "GET", path)
        got = r.json() if r.status_code == 200 else {}
        for key in ("name", "description", "address"):
            if got.get(key) != event[key]:
                c.problems.append(f"GET {path} {key}: {got.get(key)!r} != {event[key]!r}")
    for query in ("🎶🎸", "zürich", "東京", "Świętokrzyska", "żółw"):
        r = await c.send("key", "GET", "/api/events", params={"query": query})
        if r.status_code != 200 or event_id not in {e["id"] for e in r.json()}:
            c.problems.append(f"GET /api/events?query={query}: not found ({r.text[:200]})")
    # staff names, contacts, issues, comments, profile
    edits = [
        ("/profile", {"firstName": "Zoë 🙂", "lastName": "O'Brien-Ñúñez"}),
        ("/agency/contacts/{contact}", {"firstName": "Jürgen 🧑‍🚒", "additionalNotes": "说中文"}),
        ("/agency/issues/{issue}", {"name": "Zgubione dziecko 👧", "description": "🚨" * 500}),
        ("/agency/comments/{comment}", {"content": "Już jadę 🚑💨 — ✅"}),
        ("/agency/users/{support_id}", {"firstName": "Ånne 🌸", "lastName": "Δημητρίου"}),
    ]
    for template, change in edits:
        path = template.format(**c.ids)
        r = await c.send("owner", "PATCH", path, json=change)
        if r.status_code != 200:
            c.problems.append(f"PATCH {path} {change}: {r.status_code} {r.text[:200]}")
            continue
        r = await c.send("owner", "GET", path)
        got = r.json() if r.status_code == 200 else {}
        for key, value in change.items():
            if got.get(key) != value:
                c.problems.append(f"GET {path} {key}: {got.get(key)!r} != {value!r}")
    c.assert_clean()


async def test_text_the_database_cannot_store_is_not_a_5xx(checker: Checker) -> None:
    """NUL characters and lone surrogates: refuse or store them, but never fail with a 5xx."""
    c = checker

    def event_json(name: str, lat: str) -> bytes:
        return (
            '{"name": ' + name + ', "description": "d", "address": "a", "lat": ' + lat + ","
            ' "lng": 1, "timeStart": "2026-07-01T12:00:00Z", "timeEnd": "2026-07-02T12:00:00Z"}'
        ).encode()

    for raw in ('"a\\u0000b"', '"\\ud83d"', '"\\udc00x"'):
        await c.send("owner", "POST", "/agency/events", content=event_json(raw, "1"), headers=JSON)
        await c.send(
            "owner",
            "PATCH",
            f"/agency/comments/{c.ids['comment']}",
            content=b'{"content": ' + raw.encode() + b"}",
            headers=JSON,
        )
    await c.send("key", "GET", "/api/events", params={"query": "a\x00b"})
    await c.send("owner", "GET", "/agency/contacts", params={"eventId": "1\x00"})
    for value in ("1e400", "-1e400", "NaN", "Infinity", "99999999999999999999999"):
        content = event_json(f'"n-{value}"', value)
        r = await c.send("owner", "POST", "/agency/events", content=content, headers=JSON)
        c.error(f"POST /agency/events lat={value}", r, 400)
        content = b'{"content": "c", "issueId": ' + value.encode() + b"}"
        r = await c.send("owner", "POST", "/agency/comments", content=content, headers=JSON)
        c.error(f"POST /agency/comments issueId={value}", r, 400)
    c.assert_clean()
