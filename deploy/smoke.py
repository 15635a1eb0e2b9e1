#!/usr/bin/env python3
"""Smoke test of a deployed aidpost, through the URL its users reach (the edge).

    python deploy/smoke.py https://staging.example.org --expect-commit SHA

Every component answers on its own route, so each check below reaches a different service
behind the edge: build information and readiness first (waited for, while a rollout
finishes), then one request per component that proves it is up and talks to its database,
then, given ``--email`` and ``--password``, a real sign-in. One line per check with its time;
the first failure ends the run with exit code 1 and its reason.

It needs only httpx and the standard library, so it runs from a bare checkout; the
WebSocket check runs when the ``websockets`` package is importable and is skipped
otherwise. It never signs out (that would end the account's other sessions) and never
prints a password or a token. See docs/ci-cd.md.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

# ESME's wording for a wrong email or password; the answer proves the password was checked
# against the realm's database, not refused by validation before it.
SIGN_IN_ERROR = "invalid email or password"
# A syntactically valid account nobody has: failed attempts count towards the sign-in
# throttle of this address and of this account only, never of a real one.
NOBODY = "smoke-test-nobody@aidpost.example"


class CheckFailed(Exception):
    """A check's answer was not the expected one; the message says how."""


class Skipped(Exception):
    """A check that cannot run here; the message says why."""


@dataclass
class Options:
    url: str
    expect_commit: str | None = None
    deadline: float = 300.0
    retries: int = 3
    interval: float = 2.0
    timeout: float = 10.0
    email: str | None = None
    password: str | None = None
    realm: str = "organizer"


@dataclass
class Smoke:
    """The checks, in order; ``run`` prints a line for each and stops at the first failure."""

    options: Options
    client: httpx.Client
    out: Callable[[str], None] = print
    passed: int = 0
    _started: float = field(default_factory=time.monotonic)

    # -- running -------------------------------------------------------------------------

    def run(self) -> bool:
        checks: list[tuple[str, Callable[[], str], bool]] = [
            ("GET /version", self.version, True),
            ("GET /status", self.status, True),
            ("auth: GET /auth-api/.well-known/jwks.json", self.jwks, False),
            ("auth: POST /organizer-api/auth/sign-in (wrong password)", self.organizer_auth, False),
            (
                "auth: POST /participant-api/auth/sign-in (wrong password)",
                self.participant_auth,
                False,
            ),
            ("organizer: GET /organizer-api/profile (no token)", self.organizer_api, False),
            ("participant: GET /participant-api/events (no token)", self.participant_api, False),
            ("messenger: GET /messenger-api/agency/chats (no token)", self.messenger_api, False),
            ("messenger: WebSocket /messenger-api/connect", self.messenger_socket, False),
            ("mailer: GET /mailer-api/templates (no token)", self.mailer_api, False),
            ("status: GET /statuspage/api/v2/summary.json", self.status_page, False),
            ("web: GET /console/sign-in", self.console, False),
            ("web: GET /app", self.app, False),
        ]
        if self.options.email:
            realm = self.options.realm
            checks.append((f"auth: POST /{realm}-api/auth/sign-in (real)", self.sign_in, False))
        for name, check, wait in checks:
            if not self._attempt(name, check, wait):
                return False
        self.out(f"smoke test passed: {self.passed} checks in {self._since(self._started)}")
        return True

    def _attempt(self, name: str, check: Callable[[], str], wait: bool) -> bool:
        """Until the check passes: until the deadline for what a rollout delays (the new
        commit, readiness), else ``retries`` more times for what a load balancer may drop."""
        started = time.monotonic()
        deadline = started + self.options.deadline
        attempts = 0
        said = ""
        while True:
            attempts += 1
            try:
                detail = check()
            except Skipped as exc:
                self.out(f"skip  {self._since(started):>7}  {name}: {exc}")
                return True
            except CheckFailed as exc:
                reason = str(exc)
            except httpx.HTTPError as exc:
                reason = f"{type(exc).__name__}: {exc or 'no answer'}"
            else:
                self.passed += 1
                self.out(f"ok    {self._since(started):>7}  {name}: {detail}")
                return True
            more = (
                time.monotonic() + self.options.interval < deadline
                if wait
                else attempts <= self.options.retries
            )
            if not more:
                tries = f" (after {attempts} attempts)" if attempts > 1 else ""
                self.out(f"FAIL  {self._since(started):>7}  {name}: {reason}{tries}")
                return False
            if wait and reason != said:  # say what is awaited, once per new reason
                self.out(f"wait  {self._since(started):>7}  {name}: {reason}")
                said = reason
            time.sleep(self.options.interval)

    @staticmethod
    def _since(started: float) -> str:
        return f"{time.monotonic() - started:.2f}s"

    # -- the checks ------------------------------------------------------------------------

    def version(self) -> str:
        body = _json(self._get("/version"), 200)
        for key in ("version", "commit", "buildTime"):
            if not isinstance(body.get(key), str):
                raise CheckFailed(f"no {key!r} in {_short(body)}")
        commit = body["commit"]
        expected = self.options.expect_commit
        if expected and not _same_commit(commit, expected):
            raise CheckFailed(f"commit is {commit!r}, expected {expected!r}")
        return f"version {body['version']}, commit {commit}, built {body['buildTime']}"

    def status(self) -> str:
        response = self._get("/status")
        body = _json(response, response.status_code)
        if response.status_code != 200 or body.get("ready") is not True:
            failing = sorted(
                name
                for name, check in (body.get("checks") or {}).items()
                if isinstance(check, dict) and not check.get("ok")
            )
            raise CheckFailed(
                f"{response.status_code}, not ready"
                + (f": {', '.join(failing)} failing" if failing else "")
            )
        return f"ready ({body.get('component', '?')})"

    def jwks(self) -> str:
        body = _json(self._get("/auth-api/.well-known/jwks.json"), 200)
        keys = body.get("keys")
        if not isinstance(keys, list) or not keys:
            raise CheckFailed(f"no signing keys in {_short(body)}")
        return f"{len(keys)} signing key(s)"

    def organizer_auth(self) -> str:
        return self._wrong_password("organizer", 400)

    def participant_auth(self) -> str:
        return self._wrong_password("participant", 401)

    def _wrong_password(self, realm: str, status: int) -> str:
        # ESME's organizer API answers a wrong password with 400, its participant API with 401.
        response = self.client.post(
            f"/{realm}-api/auth/sign-in",
            json={"email": NOBODY, "password": "smoke-" + secrets.token_urlsafe(18)},
        )
        message = _esme_error(response, status)
        if message != SIGN_IN_ERROR:
            raise CheckFailed(f"message {message!r}, expected {SIGN_IN_ERROR!r}")
        return f"{status} {message!r}"

    def organizer_api(self) -> str:
        return self._refused("/organizer-api/profile", 403)

    def participant_api(self) -> str:
        return self._refused("/participant-api/events", 401)

    def messenger_api(self) -> str:
        return self._refused("/messenger-api/agency/chats", 401)

    def mailer_api(self) -> str:
        return self._refused("/mailer-api/templates", 403)

    def _refused(self, path: str, status: int) -> str:
        message = _esme_error(self._get(path), status)
        return f"{status} {message!r}"

    def messenger_socket(self) -> str:
        try:
            from websockets.exceptions import ConnectionClosed, WebSocketException
            from websockets.sync.client import connect
        except ImportError:
            raise Skipped("the websockets package is not installed") from None
        url = _websocket_url(self.options.url, "/messenger-api/connect")
        timeout = self.options.timeout
        try:
            with connect(url, open_timeout=timeout, close_timeout=timeout) as ws:
                ws.send(json.dumps({"Authorization": "Bearer organizer:not-a-token"}))
                try:
                    ws.recv(timeout=timeout)
                except ConnectionClosed as closed:
                    code = closed.rcvd.code if closed.rcvd else None
                    if code != 1008:
                        raise CheckFailed(f"closed with {code}, expected 1008") from None
                    return "upgraded, refused a bad token with 1008"
                except TimeoutError:
                    raise CheckFailed("still open after a bad token") from None
                raise CheckFailed("answered a bad token instead of closing")
        except (OSError, WebSocketException) as exc:  # no connection, or no upgrade
            raise CheckFailed(f"{type(exc).__name__}: {exc}") from None

    def status_page(self) -> str:
        body = _json(self._get("/statuspage/api/v2/summary.json"), 200)
        if not isinstance(body.get("page"), dict) or not isinstance(body.get("components"), list):
            raise CheckFailed(f"not a Statuspage v2 summary: {_short(body)}")
        indicator = (body.get("status") or {}).get("indicator", "?")
        return f"{len(body['components'])} component(s), indicator {indicator}"

    def console(self) -> str:
        response = self._get("/console/sign-in")
        _expect_status(response, 200)
        kind = response.headers.get("content-type", "")
        if not kind.startswith("text/html"):
            raise CheckFailed(f"content type {kind!r}, expected HTML")
        return "200 HTML"

    def app(self) -> str:
        response = self._get("/app")
        if response.status_code == 200:
            return "200"
        if response.is_redirect:
            location = response.headers.get("location", "")
            if urlsplit(location).path.startswith("/app"):
                return f"{response.status_code} to {location}"
            raise CheckFailed(f"{response.status_code} to {location!r}, outside /app")
        raise CheckFailed(f"{response.status_code}, expected 200 or a redirect")

    def sign_in(self) -> str:
        realm = self.options.realm
        response = self.client.post(
            f"/{realm}-api/auth/sign-in",
            json={"email": self.options.email, "password": self.options.password or ""},
        )
        if response.status_code != 200:
            detail = _json(response, response.status_code).get("message", "")
            raise CheckFailed(f"{response.status_code} {detail!r}")
        token = _json(response, 200).get("token")
        if not isinstance(token, str) or not token.startswith(f"{realm}:"):
            raise CheckFailed("no token in the answer")
        profile = _json(
            self._get(f"/{realm}-api/profile", headers={"Authorization": f"Bearer {token}"}), 200
        )
        if str(profile.get("email", "")).lower() != (self.options.email or "").lower():
            raise CheckFailed("the profile is not the signed-in account's")
        return f"signed in, {realm} profile read with the token"

    def _get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return self.client.get(path, headers={"Cache-Control": "no-cache", **(headers or {})})


# -- answers -------------------------------------------------------------------------------


def _expect_status(response: httpx.Response, status: int) -> None:
    if response.status_code != status:
        raise CheckFailed(
            f"{response.status_code}, expected {status}: {_short(response.text.strip())}"
        )


def _json(response: httpx.Response, status: int) -> dict[str, Any]:
    _expect_status(response, status)
    try:
        body = response.json()
    except ValueError:
        raise CheckFailed(f"not JSON: {_short(response.text.strip())}") from None
    if not isinstance(body, dict):
        raise CheckFailed(f"not a JSON object: {_short(body)}")
    return body


def _esme_error(response: httpx.Response, status: int) -> str:
    """ESME's error shape, ``{statusCode, message, error}``; returns the message."""
    body = _json(response, status)
    if set(body) != {"statusCode", "message", "error"} or body["statusCode"] != status:
        raise CheckFailed(f"not ESME's error shape: {_short(body)}")
    message = body["message"]
    return message if isinstance(message, str) else "; ".join(map(str, message))


def _same_commit(actual: str, expected: str) -> bool:
    """Equal, or ``expected`` is an abbreviation (7 or more characters) of ``actual``."""
    actual, expected = actual.lower(), expected.lower()
    return actual == expected or (len(expected) >= 7 and actual.startswith(expected))


def _websocket_url(base: str, path: str) -> str:
    parts = urlsplit(base)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + path, "", ""))


def _short(value: object, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[:limit] + "…"


# -- command line --------------------------------------------------------------------------


def parse(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="smoke.py", description="Smoke test of a deployed aidpost through its edge URL."
    )
    parser.add_argument("url", help="the edge's base URL, e.g. https://staging.example.org")
    parser.add_argument(
        "--expect-commit",
        metavar="SHA",
        help="GET /version must report this commit (or its prefix)",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="how long to wait for the commit and readiness (default 300)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=3,
        metavar="N",
        help="extra attempts of every other check (default 3)",
    )
    parser.add_argument(
        "--interval", type=float, default=2.0, metavar="SECONDS", help="pause between attempts"
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, metavar="SECONDS", help="per request (default 10)"
    )
    parser.add_argument(
        "--email", default=os.environ.get("AIDPOST_SMOKE_EMAIL") or None, help="sign in as"
    )
    parser.add_argument(
        "--password",
        default=os.environ.get("AIDPOST_SMOKE_PASSWORD") or None,
        help="its password (better: AIDPOST_SMOKE_PASSWORD, kept out of the process list)",
    )
    parser.add_argument(
        "--realm",
        choices=("organizer", "participant"),
        default="organizer",
        help="the account's realm (default organizer)",
    )
    args = parser.parse_args(argv)
    if bool(args.email) != bool(args.password):
        parser.error("--email and --password go together")
    if args.retries < 0 or args.deadline < 0:
        parser.error("--retries and --deadline cannot be negative")
    return Options(
        url=args.url.rstrip("/"),
        expect_commit=args.expect_commit,
        deadline=args.deadline,
        retries=args.retries,
        interval=args.interval,
        timeout=args.timeout,
        email=args.email,
        password=args.password,
        realm=args.realm,
    )


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    print(f"smoke test of {options.url}", flush=True)
    with httpx.Client(
        base_url=options.url,
        timeout=options.timeout,
        follow_redirects=False,
        headers={"User-Agent": "aidpost-smoke"},
    ) as client:
        smoke = Smoke(options, client, out=lambda line: print(line, flush=True))
        return 0 if smoke.run() else 1


if __name__ == "__main__":
    sys.exit(main())
