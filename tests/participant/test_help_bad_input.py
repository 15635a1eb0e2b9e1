"""Event and help-request routes of the Participant API with bad input of every kind.

ESME's Go service answers every refusal as ``{statusCode, message, error}`` with one message
string; nothing a client sends may turn into a 5xx. Each test loops over its cases and
collects every mismatch, so one run names all of them.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import httpx
import jwt

from tests.conftest import Api
from tests.participant.test_help_requests import API_KEY, hours, running_event, settle
from tests.participant.test_participant_auth import PW, call, sign_up

KEY = API_KEY["Authorization"]
MIB = 1_048_576
BAD_BODY = "invalid request body"
BAD_ID = "invalid `id` route parameter"
MISSING = 999_999
# Digits, but not ASCII ones (superscript two, fullwidth one, Arabic-Indic one): not an id.
ODD_DIGITS = ("\u00b2", "\uff11", "\u0661")


class About:
    """A field error: ESME's generic body message, or one naming the field."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, message: str) -> bool:
        return message == BAD_BODY or self.name in message

    def __repr__(self) -> str:
        return f"<{BAD_BODY!r} or a message naming {self.name!r}>"


Message = str | tuple[str, ...] | Callable[[str], bool] | None


def short(value: Any, limit: int = 90) -> str:
    text = value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else str(value)
    return text if len(text) <= limit else f"{text[:limit]}...({len(text)} chars)"


def not_found(event_id: int) -> str:
    return f"event with id {event_id} not found"


def auth(header: str | None) -> dict[str, str]:
    return {} if header is None else {"Authorization": header}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


@dataclass
class Checker:
    """Sends requests through ``call`` and records every 5xx, exception and mismatch."""

    api: Api
    problems: list[str] = field(default_factory=list)
    sent: int = 0

    async def send(self, label: str, method: str, path: str, **kw: Any) -> httpx.Response | None:
        self.sent += 1
        try:
            r = await call(self.api, method, path, **kw)
        except Exception as exc:  # the app raised: a real client would get a 500
            self.problems.append(
                f"{label}: {method} {short(path)} -> raised {type(exc).__name__}: {short(exc)}"
            )
            return None
        if r.status_code >= 500:
            self.problems.append(f"{label}: {method} {short(path)} -> {r.status_code} {r.text}")
            return None
        return r

    async def expect(
        self,
        label: str,
        method: str,
        path: str,
        status: int | tuple[int, ...],
        message: Message = None,
        **kw: Any,
    ) -> httpx.Response | None:
        r = await self.send(label, method, path, **kw)
        if r is None:
            return None
        wrong = self.mismatch(r, status, message)
        if wrong:
            self.problems.append(f"{label}: {method} {short(path)}: {wrong}")
        return r

    @staticmethod
    def mismatch(r: httpx.Response, status: int | tuple[int, ...], message: Message) -> str:
        allowed = status if isinstance(status, tuple) else (status,)
        if r.status_code not in allowed:
            want = " or ".join(map(str, allowed))
            return f"expected {want} {message!r}, got {r.status_code} {short(r.text, 200)}"
        if r.status_code < 400:
            return ""
        try:
            body = r.json()
        except ValueError:
            return f"error body is not JSON: {short(r.text)}"
        shape = {
            "statusCode": r.status_code,
            "message": body.get("message") if isinstance(body, dict) else None,
            "error": HTTPStatus(r.status_code).phrase,
        }
        if body != shape or not isinstance(shape["message"], str):
            return f"error body is not ESME's {{statusCode, message, error}}: {body}"
        got: str = body["message"]
        if message is None:
            return ""
        if isinstance(message, str):
            ok = got == message
        elif isinstance(message, tuple):
            ok = got in message
        else:
            ok = message(got)
        return "" if ok else f"expected message {message!r}, got {r.status_code} {got!r}"

    def assert_clean(self) -> None:
        assert not self.problems, f"{len(self.problems)} of {self.sent} requests:\n" + "\n".join(
            self.problems
        )


@dataclass
class World:
    event: dict[str, Any]  # running, approved agency
    over: dict[str, Any]  # same agency, ended two hours ago
    hidden: dict[str, Any]  # running, but its agency is no longer approved
    ala: dict[str, Any]
    ola: dict[str, Any]
    eve: dict[str, Any]  # signed up, has asked for nothing yet
    ala_req: dict[str, Any]
    ola_req: dict[str, Any]
    admin: str

    @property
    def eid(self) -> int:
        return int(self.event["id"])

    def token(self, who: str) -> str:
        user: dict[str, Any] = getattr(self, who)
        return str(user["token"])

    def ask(self, **overrides: Any) -> dict[str, Any]:
        body = {
            "eventId": self.eid,
            "description": "I twisted my ankle",
            "problemType": "medical",
            "lat": 52.1,
            "lng": 21.0,
        }
        body.update(overrides)
        return body


async def ask(api: Api, token: str, event_id: int) -> dict[str, Any]:
    body = {"eventId": event_id, "description": "help"}
    r = await call(api, "POST", "/chat-requests", token, json=body)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


async def build_world(api: Api) -> World:
    event, owner = await running_event(api)
    over = await api.add_event(owner, timeStart=hours(-30), timeEnd=hours(-2))
    hidden, _ = await running_event(api)
    admin = await api.superadmin()
    r = await api.request(
        "PATCH", f"/admin/agencies/{hidden['agencyId']}/verify", admin, json={"approved": False}
    )
    assert r.status_code == 200, r.text
    await settle(api)
    ala = await sign_up(api, "ala@example.com")
    ola = await sign_up(api, "ola@example.com")
    eve = await sign_up(api, "eve@example.com")
    ala_req = await ask(api, ala["token"], event["id"])
    ola_req = await ask(api, ola["token"], event["id"])
    return World(event, over, hidden, ala, ola, eve, ala_req, ola_req, admin)


async def status_of(api: Api, token: str, request_id: int) -> Any:
    r = await call(api, "GET", f"/help-requests/{request_id}", token)
    assert r.status_code == 200, r.text
    return (r.json()["status"], r.json()["position"])


async def requests_of(api: Api, token: str) -> list[tuple[int, str]]:
    r = await call(api, "GET", "/help-requests", token)
    assert r.status_code == 200, r.text
    return [(x["id"], x["status"]) for x in r.json()]


async def holds_lock(api: Api, token: str, event_id: int) -> bool:
    r = await call(api, "GET", f"/chat-requests?eventId={event_id}", token)
    assert r.status_code == 200, r.text
    return bool(r.json()["result"])


def forged(api: Api, token: str, **claims: Any) -> str:
    """``token`` re-signed with the app's own key after changing some claims."""
    realm, _, raw = token.partition(":")
    payload = jwt.decode(raw, options={"verify_signature": False})
    payload.update(claims)
    kid, key = api.app.state.auth.keys._active
    return f"{realm}:{jwt.encode(payload, key, algorithm='EdDSA', headers={'kid': kid})}"


# -- successes, events that cannot be found, search filters ----------------------------------


async def test_successes_and_events_that_cannot_be_found(api: Api) -> None:
    w = await build_world(api)
    chk = Checker(api)
    ala, eve, ola = w.token("ala"), w.token("eve"), w.token("ola")
    eid = w.eid

    r = await chk.expect("search", "GET", "/events", 200, token=eve)
    if r is not None and [e["id"] for e in r.json()] != [eid]:
        chk.problems.append(f"GET /events lists {r.json()}, expected only event {eid}")
    r = await chk.expect("event", "GET", f"/events/{eid}", 200, token=ala)
    if r is not None and r.json() != {**w.event, "isChatRequested": True}:
        chk.problems.append(f"GET /events/{eid} as ala: {r.json()}")
    r = await chk.expect("event", "GET", f"/events/{eid}", 200, token=eve)
    if r is not None and r.json().get("isChatRequested") is not False:
        chk.problems.append(f"GET /events/{eid} as eve: {r.json()}")

    for who, token, result in (("ala", ala, True), ("eve", eve, False)):
        for how, path, kw in (
            ("body", "/chat-requests", {"content": json.dumps({"eventId": eid})}),
            ("query", f"/chat-requests?eventId={eid}", {}),
        ):
            r = await chk.expect(f"lock of {who} ({how})", "GET", path, 200, token=token, **kw)
            if r is not None and r.json() != {"result": result}:
                chk.problems.append(f"GET {path} as {who}: {r.json()}, expected {result}")

    # An event that does not exist, is over, or belongs to an agency no longer approved.
    for what, missing in (
        ("unknown", MISSING),
        ("over", w.over["id"]),
        ("unapproved", w.hidden["id"]),
    ):
        msg = not_found(missing)
        await chk.expect(what, "GET", f"/events/{missing}", 404, msg, token=eve)
        await chk.expect(
            what, "GET", "/chat-requests", 404, msg, token=eve,
            content=json.dumps({"eventId": missing}),
        )  # fmt: skip
        await chk.expect(what, "GET", f"/chat-requests?eventId={missing}", 404, msg, token=eve)
        await chk.expect(
            what, "POST", "/chat-requests", 404, msg, token=eve, json=w.ask(eventId=missing)
        )
    if await requests_of(api, eve) != []:
        chk.problems.append("refused requests for unfindable events were stored")

    # eve asks, sees, and withdraws her request.
    r = await chk.expect("ask", "POST", "/chat-requests", 200, token=eve, json=w.ask())
    if r is not None:
        mine = r.json()
        if (mine["status"], mine["position"], mine["eventId"]) != ("waiting", 3, eid):
            chk.problems.append(f"POST /chat-requests answered {mine}")
        await chk.expect(
            "again", "POST", "/chat-requests", 400, "chat request already exists",
            token=eve, json=w.ask(),
        )  # fmt: skip
        r = await chk.expect("list", "GET", "/help-requests", 200, token=eve)
        if r is not None and [x["id"] for x in r.json()] != [mine["id"]]:
            chk.problems.append(f"GET /help-requests as eve: {r.json()}")
        r = await chk.expect("one", "GET", f"/help-requests/{mine['id']}", 200, token=eve)
        if r is not None and r.json() != mine:
            chk.problems.append(f"GET /help-requests/{mine['id']}: {r.json()} != {mine}")
        r = await chk.expect("cancel", "DELETE", f"/help-requests/{mine['id']}", 200, token=eve)
        if r is not None and r.json()["status"] != "cancelled":
            chk.problems.append(f"DELETE /help-requests/{mine['id']}: {r.json()}")
        await chk.expect(
            "cancel twice", "DELETE", f"/help-requests/{mine['id']}", 400,
            "only a waiting help request can be cancelled", token=eve,
        )  # fmt: skip

    # Internal routes with the API key.
    release = {"participantId": w.ola["user"]["id"], "eventId": eid}
    await chk.expect(
        "release", "DELETE", "/chat-requests", 200, headers=dict(API_KEY), json=release
    )
    if await holds_lock(api, ola, eid) or (await status_of(api, ola, w.ola_req["id"]))[0] != (
        "cancelled"
    ):
        chk.problems.append("DELETE /chat-requests with the key did not release ola's lock")
    await chk.expect(
        "release unknown", "DELETE", "/chat-requests", 200, headers=dict(API_KEY),
        json={"participantId": MISSING, "eventId": MISSING},
    )  # fmt: skip
    ids = [w.ala["user"]["id"], w.ola["user"]["id"]]
    users = {str(w.ala["user"]["id"]): w.ala["user"], str(w.ola["user"]["id"]): w.ola["user"]}
    for how, path, kw in (
        ("body", "/users", {"content": json.dumps({"ids": [*ids, MISSING]})}),
        ("query", f"/users?ids={ids[0]},{ids[1]},{MISSING}", {}),
        ("1000 ids", "/users", {"json": {"ids": list(range(1, 1001))}}),
    ):
        r = await chk.expect(f"users ({how})", "GET", path, 200, headers=dict(API_KEY), **kw)
        if r is not None and how != "1000 ids" and r.json() != users:
            chk.problems.append(f"GET {path}: {r.json()}")
    # The body limit is 1 MiB: exactly that much is read, one byte more is refused.
    head = json.dumps({"ids": ids, "pad": ""}).encode()[:-2]
    exact = head + b"a" * (MIB - len(head) - 2) + b'"}'
    assert len(exact) == MIB
    await chk.expect("1 MiB body", "GET", "/users", 200, headers=dict(API_KEY), content=exact)
    await chk.expect(
        "1 MiB + 1 body", "GET", "/users", 413, headers=dict(API_KEY), content=exact + b" "
    )

    # Search: query length, odd characters, from/to filters.
    searches: list[tuple[str, int | tuple[int, ...], Message]] = [
        (f"query={q(w.event['name'])}", 200, None),
        ("query=" + "q" * 200, 200, None),
        ("query=" + "q" * 201, 400, About("query")),
        ("query=" + "q" * 5000, 400, About("query")),
        ("query=" + q("ą" * 201), 400, About("query")),
        ("query=%25", 200, None),
        ("query=_", 200, None),
        ("query=%5C", 200, None),
        ("query=a%00b", 400, About("query")),
        ("query=%ED%A0%BD", (200, 400), None),  # not UTF-8: replaced or refused, never 500
        ("query=%FF", (200, 400), None),
        (f"from={q(hours(-2))}", 200, None),
        (f"to={q(hours(2))}", 200, None),
        (f"from={q(hours(-2))}&to={q(hours(-3))}", 200, None),
        ("from=2026-07-01T12:00:00.123456789Z", 200, None),  # Go's RFC3339Nano
        ("from=2026-07-01T12:00:00%2B02:00", 200, None),
        ("from=2026-07-01T12:00:00", (200, 400), None),  # no offset: lenient or strict
        ("from=0001-01-01T00:00:00%2B01:00", (200, 400), None),  # before year 1 in UTC
        ("to=9998-12-31T23:59:59-02:00", (200, 400), None),  # after year 9998 in UTC
    ]
    for name in ("from", "to"):
        message = f"invalid format of `{name}` filter value; RFC3339 required"
        for bad in (
            "yesterday",
            "2026-07-01",
            "2026-07-01 12:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-07-01T25:00:00Z",
            "2026-07-01T12:00:00%2B25:00",
            "10000-01-01T00:00:00Z",
            "2026-07-01T12:00:00Zjunk",
            "a%00b",
            "T" * 5000,
        ):
            searches.append((f"{name}={bad}", 400, message))
    for params, status, message in searches:
        await chk.expect(
            f"search {short(params, 60)}", "GET", f"/events?{params}", status, message, token=eve
        )
    chk.assert_clean()


# -- tokens and API keys ----------------------------------------------------------------------


async def test_bad_tokens_and_api_keys(api: Api) -> None:
    w = await build_world(api)
    chk = Checker(api)
    ala = w.token("ala")
    eid, rid = w.eid, w.ala_req["id"]

    gone = (await sign_up(api, "gone@example.com"))["token"]
    assert (await call(api, "POST", "/auth/sign-out", gone)).status_code == 200
    ghost = await sign_up(api, "ghost@example.com")
    r = await call(api, "DELETE", "/profile", ghost["token"], json={"password": PW})
    assert r.status_code == 200, r.text
    # Someone signs up after the deletion: the ghost's token must not become theirs.
    heir = await sign_up(api, "heir@example.com")
    await ask(api, heir["token"], eid)
    jwt_of_ala = ala.partition(":")[2]
    iat = int(jwt.decode(jwt_of_ala, options={"verify_signature": False})["iat"])
    header = "invalid authorization header"
    token = "invalid token"
    cases: list[tuple[str, str | None, str]] = [
        ("no header", None, header),
        ("Basic x", "Basic x", header),
        ("Basic with a valid token", f"Basic {ala}", header),
        ("Bearer alone", "Bearer", header),
        ("garbage", "Bearer garbage", token),
        ("participant:garbage", "Bearer participant:garbage", token),
        ("over-long", "Bearer participant:" + "a" * 5000, token),
        (
            "tampered signature",
            f"Bearer {ala[:-4]}{'AAAA' if ala[-4:] != 'AAAA' else 'BBBB'}",
            token,
        ),
        ("organizer token", f"Bearer {w.admin}", token),
        ("organizer jwt unprefixed", f"Bearer {w.admin.partition(':')[2]}", token),
        ("participant jwt as organizer", f"Bearer organizer:{jwt_of_ala}", token),
        ("participant API key", KEY, token),
        ("expired", f"Bearer {forged(api, ala, iat=iat - 120, exp=iat - 60)}", token),
        ("signed out", f"Bearer {gone}", token),
        ("deleted participant", f"Bearer {ghost['token']}", token),
        ("unknown participant", f"Bearer {forged(api, ala, sub=str(MISSING))}", token),
    ]
    routes: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/events", {}),
        ("GET", f"/events/{eid}", {}),
        ("GET", "/chat-requests", {"content": json.dumps({"eventId": eid})}),
        ("GET", f"/chat-requests?eventId={eid}", {}),
        ("POST", "/chat-requests", {"json": w.ask()}),
        ("GET", "/help-requests", {}),
        ("GET", f"/help-requests/{rid}", {}),
        ("DELETE", f"/help-requests/{rid}", {}),
    ]
    tokens = {"ala": ala, "ola": w.token("ola"), "eve": w.token("eve"), "heir": heir["token"]}
    before = {who: await requests_of(api, t) for who, t in tokens.items()}
    for method, path, kw in routes:
        for label, value, message in cases:
            await chk.expect(label, method, path, 401, message, headers=auth(value), **kw)
    after = {who: await requests_of(api, t) for who, t in tokens.items()}
    if after != before:
        chk.problems.append(f"refused callers changed help requests: {before} -> {after}")

    # Internal routes: only the participant API key, as a Bearer credential.
    release = {"participantId": w.ala["user"]["id"], "eventId": eid}
    keys: list[tuple[str, str | None]] = [
        ("no header", None),
        ("Basic key", "Basic dev-api-key-not-for-production"),
        ("bare key", "dev-api-key-not-for-production"),
        ("Bearer alone", "Bearer"),
        ("wrong key", "Bearer wrong"),
        ("key plus a character", KEY + "x"),
        ("key prefix", KEY[:-1]),
        ("organizer API key", "Bearer organizer-api-key-for-tests"),
        ("participant token", f"Bearer {ala}"),
        ("organizer token", f"Bearer {w.admin}"),
    ]
    internal: list[tuple[str, str, dict[str, Any]]] = [
        ("DELETE", "/chat-requests", {"json": release}),
        ("GET", "/users", {"content": json.dumps({"ids": [w.ala["user"]["id"]]})}),
        ("GET", f"/users?ids={w.ala['user']['id']}", {}),
    ]
    for method, path, kw in internal:
        for label, value in keys:
            await chk.expect(label, method, path, 401, "invalid api key", headers=auth(value), **kw)
    if not await holds_lock(api, ala, eid) or await status_of(api, ala, rid) != ("waiting", 1):
        chk.problems.append("a refused DELETE /chat-requests released ala's lock")
    chk.assert_clean()


# -- bodies: malformed, not objects, oversized, NUL and lone surrogates -----------------------


async def test_malformed_oversized_and_unstorable_bodies(api: Api) -> None:
    w = await build_world(api)
    chk = Checker(api)
    ala, eve = w.token("ala"), w.token("eve")
    eid = w.eid
    key = {"headers": dict(API_KEY)}
    body_routes: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/chat-requests", {"token": ala}),
        ("POST", "/chat-requests", {"token": eve}),
        ("DELETE", "/chat-requests", key),
        ("GET", "/users", key),
    ]
    junk = [
        b"{",
        b"}",
        b"[]",
        b"[1]",
        b'[{"eventId": 1}]',
        b'"text"',
        b"null",
        b"0",
        b"true",
        b"NaN",
        b"\xff\xfe",
        b"{'eventId': 1}",
        b'{"eventId": 1',
        b'{"eventId": 1}{"eventId": 2}',
        b'{"eventId": 1,}',
        b'{"description": "a\x00b"}',  # a raw control character inside a string
        b'{"description": "\xff"}',  # not UTF-8
        b"\x00",
    ]
    for method, path, kw in body_routes:
        for content in junk:
            await chk.expect(
                f"body {short(content)}", method, path, 400, BAD_BODY, content=content, **kw
            )
    for method, path, kw in body_routes[1:3]:
        await chk.expect("empty body", method, path, 400, BAD_BODY, content=b"", **kw)
    await chk.expect("empty body", "GET", "/users", 400, BAD_BODY, content=b"", **key)
    await chk.expect(
        "empty body", "GET", "/chat-requests", 400, About("eventId"), token=ala, content=b""
    )

    # Routes that read no body ignore one.
    rid = w.ala_req["id"]
    for method, path in (
        ("GET", "/events"),
        ("GET", f"/events/{eid}"),
        ("GET", "/help-requests"),
        ("GET", f"/help-requests/{rid}"),
    ):
        for content in (b"{", b"[]", b"null", b'"x"'):
            await chk.expect(
                f"ignored body {content!r}", method, path, 200, token=ala, content=content
            )

    # Over 1 MiB: 413 on every route, whatever the body, before any other check.
    huge = b'{"x":"' + b"a" * (MIB + 10) + b'"}'
    every: list[tuple[str, str, dict[str, Any]]] = [
        *body_routes,
        ("GET", "/events", {"token": ala}),
        ("GET", f"/events/{eid}", {"token": ala}),
        ("GET", "/help-requests", {"token": ala}),
        ("GET", f"/help-requests/{rid}", {"token": ala}),
        ("DELETE", f"/help-requests/{rid}", {"token": ala}),
    ]
    for method, path, kw in every:
        await chk.expect("over 1 MiB", method, path, 413, content=huge, **kw)
    long_text = json.dumps(w.ask(description="d" * (MIB + 10))).encode()
    await chk.expect("over 1 MiB", "POST", "/chat-requests", 413, token=eve, content=long_text)
    await chk.expect("over 1 MiB, no token", "POST", "/chat-requests", 413, content=long_text)

    async def chunks() -> Any:
        for _ in range(17):
            yield b"a" * 65_536

    # Without a Content-Length the limit applies while reading: the client must get 413 ...
    transport = httpx.ASGITransport(app=api.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://aidpost.test") as client:
        r = await client.post(
            "/participant-api/chat-requests", headers=bearer(eve), content=chunks()
        )
    chk.sent += 1
    if wrong := chk.mismatch(r, 413, None):
        chk.problems.append(f"chunked over 1 MiB: POST /chat-requests: {wrong}")
    # ... and the app must not fail behind that answer (a 500 it could not send).
    await chk.expect(
        "chunked over 1 MiB", "POST", "/chat-requests", 413, token=eve, content=chunks()
    )
    if await requests_of(api, eve) != [] or await status_of(api, ala, rid) != ("waiting", 1):
        chk.problems.append("an oversized request changed help requests")

    # NUL characters and lone surrogates as JSON escapes (the raw text is sent as is).
    def ask_raw(**fields: str) -> str:
        parts = {
            "eventId": str(eid),
            "description": '"help"',
            "problemType": '"medical"',
            "lat": "52.1",
            "lng": "21.0",
        }
        parts.update(fields)
        return "{" + ", ".join(f'"{k}": {v}' for k, v in parts.items()) + "}"

    text_cases: list[tuple[str, str, str, dict[str, Any], Message]] = [
        ("POST", "/chat-requests", ask_raw(description=r'"a\u0000b"'), {"token": eve},
         About("description")),
        ("POST", "/chat-requests", ask_raw(description=r'"\u0000"'), {"token": eve},
         About("description")),
        ("POST", "/chat-requests", ask_raw(description=r'"\ud83d"'), {"token": eve},
         About("description")),
        ("POST", "/chat-requests", ask_raw(description=r'"x\udc00y"'), {"token": eve},
         About("description")),
        ("POST", "/chat-requests", ask_raw(description=r'"\ude00\ud83d"'), {"token": eve},
         About("description")),
        ("POST", "/chat-requests", ask_raw(problemType=r'"medical\u0000"'), {"token": eve},
         About("problemType")),
        ("POST", "/chat-requests", ask_raw(problemType=r'"\ud83d"'), {"token": eve},
         About("problemType")),
        ("POST", "/chat-requests", ask_raw(eventId=r'"\u0000"'), {"token": eve},
         About("eventId")),
        ("POST", "/chat-requests", ask_raw(lat=r'"\ud83d"'), {"token": eve}, About("lat")),
        ("POST", "/chat-requests", ask_raw(sendTranscript='"yes"'), {"token": eve},
         About("sendTranscript")),
        ("POST", "/chat-requests", ask_raw(sendTranscript="1"), {"token": eve},
         About("sendTranscript")),
        ("POST", "/chat-requests", ask_raw(lng=r'"\u0000"'), {"token": eve}, About("lng")),
        ("POST", "/chat-requests", r'{"eventId\u0000": ' + f'{eid}, "description": "x"}}',
         {"token": eve}, About("eventId")),
        ("GET", "/chat-requests", r'{"eventId": "\u0000"}', {"token": ala}, About("eventId")),
        ("GET", "/chat-requests", r'{"eventId": "\ud83d"}', {"token": ala}, About("eventId")),
        ("DELETE", "/chat-requests", r'{"participantId": "\u0000", "eventId": ' + f"{eid}}}", key,
         About("participantId")),
        ("DELETE", "/chat-requests", r'{"participantId": 1, "eventId": "\udfff"}', key,
         About("eventId")),
        ("GET", "/users", r'{"ids": ["\u0000"]}', key, BAD_BODY),
        ("GET", "/users", r'{"ids": ["\ud83d"]}', key, BAD_BODY),
        ("GET", "/users", r'{"ids": "\u0000"}', key, BAD_BODY),
    ]  # fmt: skip
    for method, path, raw, kw, message in text_cases:
        await chk.expect(f"raw {raw}", method, path, 400, message, content=raw, **kw)
    for method, path, kw, message in (
        ("GET", "/chat-requests?eventId=%00", {"token": ala}, About("eventId")),
        ("GET", "/chat-requests?eventId=%ED%A0%BD", {"token": ala}, About("eventId")),
        ("GET", "/chat-requests?eventId=1%00", {"token": ala}, About("eventId")),
        ("GET", "/users?ids=%00", key, BAD_BODY),
        ("GET", "/users?ids=1%00", key, BAD_BODY),
        ("GET", "/users?ids=%ED%A0%BD", key, BAD_BODY),
    ):
        await chk.expect("query", method, path, 400, message, **kw)
    # A real emoji, written as a surrogate pair, is text like any other.
    r = await chk.expect(
        "emoji", "POST", "/chat-requests", 200, token=eve,
        content=ask_raw(description=r'"help \ud83d\ude00"'),
    )  # fmt: skip
    if r is not None and r.json()["description"] != "help \U0001f600":
        chk.problems.append(f"emoji description stored as {r.json()['description']!r}")
    # Withdrawing reads no body either.
    r = await chk.expect(
        "ignored body", "DELETE", f"/help-requests/{rid}", 200, token=ala, content=b"[{"
    )
    if r is not None and r.json()["status"] != "cancelled":
        chk.problems.append(f"DELETE /help-requests/{rid} with a junk body: {r.json()}")
    chk.assert_clean()


# -- wrong types and out-of-range values, field by field --------------------------------------


async def test_wrong_types_and_values_of_every_field(api: Api) -> None:
    w = await build_world(api)
    chk = Checker(api)
    ala, eve = w.token("ala"), w.token("eve")
    eid = w.eid
    key = dict(API_KEY)

    async def post(label: str, status: int, message: Message, **kw: Any) -> None:
        r = await chk.expect(label, "POST", "/chat-requests", status, message, token=eve, **kw)
        if r is not None and r.status_code == 200:  # withdraw it, so the next case may ask
            await call(api, "DELETE", f"/help-requests/{r.json()['id']}", eve)

    ints_bad: list[Any] = [
        str(eid), "", True, False, None, 0, -1, -(2**31), 2**31, 2**40, 2**63, 10**30,
        1.5, float(eid), [eid], {"id": eid},
    ]  # fmt: skip
    for value in ints_bad:
        await post(f"eventId={value!r}", 400, About("eventId"), json=w.ask(eventId=value))
    missing_event = w.ask()
    del missing_event["eventId"]
    await post("no eventId", 400, About("eventId"), json=missing_event)

    raw = json.dumps(w.ask(), allow_nan=False)
    for name, literal in (
        ("eventId", "NaN"), ("eventId", "Infinity"), ("eventId", "1e400"), ("eventId", "1e2"),
        ("eventId", "-0"), ("eventId", "9" * 400),
        ("lat", "NaN"), ("lat", "-Infinity"), ("lat", "1e400"), ("lat", "9" * 400),
        ("lng", "NaN"), ("lng", "Infinity"), ("lng", "-" + "9" * 400),
    ):  # fmt: skip
        original = json.dumps(w.ask()[name])
        content = raw.replace(f'"{name}": {original}', f'"{name}": {literal}')
        assert content != raw
        await post(f"raw {name}={short(literal, 20)}", 400, About(name), content=content)

    for value in [{"a": 1}, ["x"], 5, 2**40, True, "x" * 2001, "ą" * 2001]:
        await post(
            f"description={short(value, 20)}", 400, About("description"),
            json=w.ask(description=value),
        )  # fmt: skip
    for value in ["", " " * 10]:
        await post(
            f"description={value!r}, problemType other", 400, About("description"),
            json=w.ask(description=value, problemType="other"),
        )  # fmt: skip
    for value in ["MEDICAL", "fire", "", 5, True, ["medical"], {"medical": 1}]:
        await post(
            f"problemType={value!r}", 400, About("problemType"), json=w.ask(problemType=value)
        )
    for name, limit in (("lat", 90), ("lng", 180)):
        for value in [
            True, False, "52.1", "", [1], {}, limit + 1, -limit - 1, limit + 0.0001, 2**40,
            -(10**30),
        ]:  # fmt: skip
            await post(f"{name}={value!r}", 400, About(name), json=w.ask(**{name: value}))
    for label, body in (
        ("only lat", w.ask(lng=None)),
        ("only lng", w.ask(lat=None)),
        ("lat without lng key", {k: v for k, v in w.ask().items() if k != "lng"}),
        ("lng without lat key", {k: v for k, v in w.ask().items() if k != "lat"}),
    ):
        await post(label, 400, ("lat and lng must be given together", BAD_BODY), json=body)
    # Values at the edges are accepted.
    for label, body in (
        ("2000 characters", w.ask(description="d" * 2000)),
        ("lat 90, lng -180", w.ask(lat=90, lng=-180)),
        ("lat -90.0, lng 180.0", w.ask(lat=-90.0, lng=180.0)),
        ("no position", {"eventId": eid, "description": "x", "problemType": "security"}),
        ("no problemType", {"eventId": eid, "description": "x"}),
        ("unknown field", w.ask(extra={"a": [1, 2]})),
    ):
        await post(label, 200, None, json=body)
    if [s for _, s in await requests_of(api, eve)] != ["cancelled"] * 6:
        chk.problems.append(f"eve's requests: {await requests_of(api, eve)}")

    # GET /chat-requests: eventId as a JSON body or a query parameter.
    for value in ints_bad:
        await chk.expect(
            f"eventId={value!r}", "GET", "/chat-requests", 400, About("eventId"), token=ala,
            content=json.dumps({"eventId": value}),
        )  # fmt: skip
    for literal in ("NaN", "Infinity", "1e400", "9" * 400):
        await chk.expect(
            f"raw eventId={short(literal, 20)}", "GET", "/chat-requests", 400, About("eventId"),
            token=ala, content=f'{{"eventId": {literal}}}',
        )  # fmt: skip
    for value in (
        "", "abc", "-1", "0", "1.5", "1e3", "0x10", str(2**31), "9" * 40, f"{eid},{eid}",
        "true", "null", f"%20{eid}", *ODD_DIGITS,
    ):  # fmt: skip
        await chk.expect(
            f"?eventId={value}", "GET", f"/chat-requests?eventId={q(value)}", 400,
            About("eventId"), token=ala,
        )  # fmt: skip
    await chk.expect("no eventId", "GET", "/chat-requests", 400, About("eventId"), token=ala)

    # DELETE /chat-requests (internal): participantId and eventId.
    release = {"participantId": w.ala["user"]["id"], "eventId": eid}
    for name in ("participantId", "eventId"):
        for value in ints_bad:
            await chk.expect(
                f"{name}={value!r}", "DELETE", "/chat-requests", 400, About(name),
                headers=dict(key), json={**release, name: value},
            )  # fmt: skip
        await chk.expect(
            f"no {name}", "DELETE", "/chat-requests", 400, About(name), headers=dict(key),
            json={k: v for k, v in release.items() if k != name},
        )  # fmt: skip
        for literal in ("NaN", "1e400", "9" * 400):
            other = "eventId" if name == "participantId" else "participantId"
            content = f'{{"{other}": {release[other]}, "{name}": {literal}}}'
            await chk.expect(
                f"raw {name}={short(literal, 20)}", "DELETE", "/chat-requests", 400,
                About(name), headers=dict(key), content=content,
            )  # fmt: skip
    if not await holds_lock(api, ala, eid):
        chk.problems.append("a refused DELETE /chat-requests released ala's lock")

    # GET /users (internal): ids.
    for value in [
        [], "1", 1, None, {"1": 1}, [True], [0], [-1], [2**31], [2**40], [1.5], ["1"], [None],
        [[1]], [{}], list(range(1, 1002)),
    ]:  # fmt: skip
        await chk.expect(
            f"ids={short(value, 30)}", "GET", "/users", 400, BAD_BODY, headers=dict(key),
            content=json.dumps({"ids": value}),
        )  # fmt: skip
    for content in ('{"ids": [NaN]}', '{"ids": [1e400]}', '{"ids": [%s]}' % ("9" * 400), "{}"):
        await chk.expect(
            f"raw {short(content, 30)}", "GET", "/users", 400, BAD_BODY, headers=dict(key),
            content=content,
        )  # fmt: skip
    for value in ("", "a", "1,,2", ",", "-1", "0", "1.5", "9" * 12, "1;2", *ODD_DIGITS):
        await chk.expect(
            f"?ids={value}", "GET", f"/users?ids={q(value)}", 400, BAD_BODY, headers=dict(key)
        )
    await chk.expect("no ids", "GET", "/users", 400, BAD_BODY, headers=dict(key))
    chk.assert_clean()


# -- route ids, and other participants' requests ----------------------------------------------


async def test_route_ids_and_other_participants_requests(api: Api) -> None:
    w = await build_world(api)
    chk = Checker(api)
    ala, ola = w.token("ala"), w.token("ola")
    mine, theirs = w.ala_req["id"], w.ola_req["id"]
    paths = [("GET", "/events/{}"), ("GET", "/help-requests/{}"), ("DELETE", "/help-requests/{}")]
    bad_ids = [
        "abc", "-1", "-0", "1.5", "1e3", "0x10", "1_0", " 1", "1 ", "%00", "%ED%A0%BD",
        "9" * 10, "9" * 40, str(2**63), *ODD_DIGITS,
    ]  # fmt: skip
    for method, template in paths:
        for value in bad_ids:
            path = template.format(value if "%" in value else q(value))
            await chk.expect(f"id {value!r}", method, path, 400, BAD_ID, token=ala)
        # Zero and large ids are well formed: refused as malformed or simply not found.
        for value in ("0", str(MISSING), str(2**31), str(2**40)):
            await chk.expect(f"id {value}", method, template.format(value), (400, 404), token=ala)

    r = await chk.expect("own", "GET", f"/help-requests/{mine}", 200, token=ala)
    if r is not None and r.json()["id"] != mine:
        chk.problems.append(f"GET /help-requests/{mine}: {r.json()}")
    before = await status_of(api, ola, theirs)
    for method in ("GET", "DELETE"):
        await chk.expect(
            "another participant's request", method, f"/help-requests/{theirs}", 404,
            f"help request with id {theirs} not found", token=ala,
        )  # fmt: skip
        await chk.expect(
            "unknown request", method, f"/help-requests/{MISSING}", 404,
            f"help request with id {MISSING} not found", token=ala,
        )  # fmt: skip
    if await status_of(api, ola, theirs) != before or not await holds_lock(api, ola, w.eid):
        chk.problems.append("ala's refused DELETE changed ola's request")
    r = await chk.expect("list", "GET", "/help-requests", 200, token=ala)
    if r is not None and [x["id"] for x in r.json()] != [mine]:
        chk.problems.append(f"ala's list shows {r.json()}")
    chk.assert_clean()
