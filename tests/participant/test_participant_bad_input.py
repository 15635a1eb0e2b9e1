"""Every participant route with malformed, oversized and unauthorized input."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Api
from tests.participant.test_participant_auth import PW, call, sign_up

BODY_ROUTES = [
    ("POST", "/auth/sign-up", False),
    ("POST", "/auth/sign-in", False),
    ("PATCH", "/profile", True),
    ("PATCH", "/profile/change-password", True),
    ("DELETE", "/profile", True),
]
TOKEN_ROUTES = [
    ("GET", "/profile"),
    ("PATCH", "/profile"),
    ("DELETE", "/profile"),
    ("POST", "/auth/sign-out"),
    ("PATCH", "/profile/change-password"),
]


@pytest.mark.parametrize(("method", "path", "needs_token"), BODY_ROUTES)
async def test_malformed_and_oversized_bodies(
    api: Api, method: str, path: str, needs_token: bool
) -> None:
    token = (await sign_up(api))["token"] if needs_token else None
    for content in (b"{", b"[1]", b'"text"', b"\xff\xfe"):
        r = await call(api, method, path, token, content=content)
        assert r.status_code == 400, (content, r.text)
        assert r.json() == {
            "statusCode": 400,
            "message": "invalid request body",
            "error": "Bad Request",
        }
    r = await call(api, method, path, token, content=b'{"x":"' + b"a" * 1_100_000 + b'"}')
    assert r.status_code == 413
    for value in (12, ["list"], {"o": 1}, "a\u0000b", "\ud83d"):
        body: dict[str, Any] = {
            "email": value, "password": value, "confirmPassword": value, "phoneNumber": value,
            "oldPassword": value, "newPassword": value, "confirmNewPassword": value,
        }  # fmt: skip
        raw = json.dumps(body).encode()  # ASCII escapes, so lone surrogates travel as sent
        r = await call(api, method, path, token, content=raw)
        assert r.status_code in (400, 401), (value, r.text)
        assert r.status_code < 500


@pytest.mark.parametrize(("method", "path"), TOKEN_ROUTES)
@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "invalid authorization header"),
        ("Basic abc", "invalid authorization header"),
        ("Bearer", "invalid authorization header"),
        ("Bearer participant:garbage", "invalid token"),
        ("Bearer organizer:garbage", "invalid token"),
        ("Bearer participant:" + "a" * 5000, "invalid token"),
    ],
)
async def test_bad_tokens_get_401(
    api: Api, method: str, path: str, header: str | None, message: str
) -> None:
    headers = {} if header is None else {"Authorization": header}
    r = await call(api, method, path, headers=headers, json={"password": PW})
    assert r.status_code == 401
    assert r.json() == {"statusCode": 401, "message": message, "error": "Unauthorized"}


async def test_one_participant_cannot_touch_another(api: Api) -> None:
    ala = await sign_up(api, "ala@example.com")
    ola = await sign_up(api, "ola@example.com")
    r = await call(api, "DELETE", "/profile", ala["token"], json={"password": PW})
    assert r.json()["id"] == ala["user"]["id"]
    assert (await call(api, "GET", "/profile", ola["token"])).json()["id"] == ola["user"]["id"]
