"""The participant realm: ESME's Participant API sign-up, sign-in, sign-out, profile."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Api

PW = "participant-pass"


async def call(
    api: Api, method: str, path: str, token: str | None = None, **kw: Any
) -> httpx.Response:
    headers = kw.pop("headers", {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return await api.client.request(method, "/participant-api" + path, headers=headers, **kw)


async def sign_up(api: Api, email: str = "ala@example.com") -> dict[str, Any]:
    r = await call(
        api,
        "POST",
        "/auth/sign-up",
        json={
            "email": email,
            "password": PW,
            "confirmPassword": PW,
            "phoneNumber": "+48 600 100 200",
        },
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_sign_up_then_profile(api: Api) -> None:
    body = await sign_up(api)
    assert body["token"].startswith("participant:")
    assert set(body["user"]) == {"id", "email", "phoneNumber", "timeCreated", "timeSignOut"}
    r = await call(api, "GET", "/profile", body["token"])
    assert r.status_code == 200 and r.json() == body["user"]
    r = await call(api, "PATCH", "/profile", body["token"], json={"phoneNumber": "+48 500 000 000"})
    assert r.json()["phoneNumber"] == "+48 500 000 000"


async def test_participant_and_organizer_tokens_do_not_mix(api: Api) -> None:
    participant = (await sign_up(api))["token"]
    organizer = await api.superadmin()
    assert (await api.request("GET", "/profile", participant)).status_code == 403
    r = await call(api, "GET", "/profile", organizer)
    assert r.status_code == 401 and r.json()["message"] == "invalid token"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"email": "nope", "password": PW, "confirmPassword": PW}, "invalid email address"),
        (
            {"email": "a@example.com", "password": "short", "confirmPassword": "short"},
            "password must be at least 8 characters",
        ),
        (
            {"email": "a@example.com", "password": PW, "confirmPassword": PW + "x"},
            "confirmPassword must match password",
        ),
        (
            {"email": "a@example.com", "password": "p" * 129, "confirmPassword": "p" * 129},
            "password must be at most 128 characters",
        ),
        (
            {
                "email": "a@example.com",
                "password": PW,
                "confirmPassword": PW,
                "phoneNumber": "call me",
            },
            "phoneNumber must be a phone number of at most 30 characters",
        ),
        ({"email": 5, "password": PW, "confirmPassword": PW}, "email must be a string"),
    ],
)
async def test_sign_up_refusals(api: Api, body: dict[str, Any], message: str) -> None:
    r = await call(api, "POST", "/auth/sign-up", json=body)
    assert r.status_code == 400
    assert r.json() == {"statusCode": 400, "message": message, "error": "Bad Request"}


async def test_sign_up_malformed_bodies(api: Api) -> None:
    for content in (b"", b"{", b"[]", b'"x"', b"null"):
        r = await call(api, "POST", "/auth/sign-up", content=content)
        assert r.status_code == 400 and r.json()["message"] == "invalid request body", content


async def test_duplicate_email_is_refused(api: Api) -> None:
    await sign_up(api)
    r = await call(
        api,
        "POST",
        "/auth/sign-up",
        json={"email": "ALA@example.com", "password": PW, "confirmPassword": PW},
    )
    assert r.status_code == 400 and r.json()["message"] == "email already exists"


async def test_sign_in_and_sign_out(api: Api) -> None:
    await sign_up(api)
    r = await call(
        api, "POST", "/auth/sign-in", json={"email": "ala@example.com", "password": "wrong-pass"}
    )
    assert r.status_code == 401 and r.json()["message"] == "invalid email or password"
    r = await call(api, "POST", "/auth/sign-in", json={"email": "ala@example.com", "password": PW})
    assert r.status_code == 200
    token = r.json()["token"]
    r = await call(api, "POST", "/auth/sign-out", token)
    assert r.status_code == 200
    r = await call(api, "GET", "/profile", token)
    assert r.status_code == 401 and r.json()["message"] == "invalid token"
    r = await call(api, "GET", "/profile", headers={"Authorization": "Token x"})
    assert r.json()["message"] == "invalid authorization header"


async def test_change_password(api: Api) -> None:
    token = (await sign_up(api))["token"]
    body = {
        "oldPassword": "not-the-password",
        "newPassword": "new-password-1",
        "confirmNewPassword": "new-password-1",
    }
    r = await call(api, "PATCH", "/profile/change-password", token, json=body)
    assert r.status_code == 401 and r.json()["message"] == "invalid password"
    body["oldPassword"] = PW
    r = await call(api, "PATCH", "/profile/change-password", token, json=body)
    assert r.status_code == 200 and r.json()["email"] == "ala@example.com"
    assert (await call(api, "GET", "/profile", token)).status_code == 401
    r = await call(
        api,
        "POST",
        "/auth/sign-in",
        json={"email": "ala@example.com", "password": "new-password-1"},
    )
    assert r.status_code == 200


async def test_delete_account_needs_the_password(api: Api) -> None:
    created = await sign_up(api)
    token = created["token"]
    r = await call(api, "DELETE", "/profile", token, json={"password": "wrong-password"})
    assert r.status_code == 401 and r.json()["message"] == "invalid password"
    r = await call(api, "DELETE", "/profile", token, json={"password": PW})
    assert r.status_code == 200 and r.json()["id"] == created["user"]["id"]
    assert (await call(api, "GET", "/profile", token)).status_code == 401
    r = await call(api, "POST", "/auth/sign-in", json={"email": "ala@example.com", "password": PW})
    assert r.status_code == 401
    await sign_up(api)  # the address is free again
