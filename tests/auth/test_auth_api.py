"""Auth's organizer-realm endpoints: sign-in, sign-out, password change, JWKS, rotation."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from tests.conftest import PASSWORD, SUPERADMIN, Api


async def test_sign_in_returns_public_user_and_prefixed_token(api: Api) -> None:
    r = await api.request(
        "POST", "/auth/sign-in", json={"email": SUPERADMIN[0], "password": SUPERADMIN[1]}
    )
    assert r.status_code == 200
    body = r.json()
    assert body["token"].startswith("organizer:")
    assert set(body["user"]) == {
        "id", "email", "firstName", "lastName", "phoneNumber",
        "timeCreated", "timeSignOut", "role", "agencyId",
    }  # fmt: skip
    assert body["user"]["role"] == 0 and body["user"]["agencyId"] is None
    assert "password" not in r.text


async def test_token_is_eddsa_with_kid_listed_in_jwks(api: Api) -> None:
    token = (await api.superadmin()).split(":", 1)[1]
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "EdDSA"
    jwks = (await api.client.get("/auth-api/.well-known/jwks.json")).json()
    assert header["kid"] in {k["kid"] for k in jwks["keys"]}
    assert all("d" not in k for k in jwks["keys"]), "private key material in JWKS"


@pytest.mark.parametrize(
    ("email", "password"),
    [(SUPERADMIN[0], "wrong-password-but-long-enough"), ("nobody@example.com", SUPERADMIN[1])],
)
async def test_wrong_password_and_unknown_email_look_the_same(
    api: Api, email: str, password: str
) -> None:
    r = await api.request("POST", "/auth/sign-in", json={"email": email, "password": password})
    assert r.status_code == 400
    assert r.json() == {
        "statusCode": 400,
        "message": "invalid email or password",
        "error": "Bad Request",
    }


async def test_unknown_email_costs_a_hash_too(api: Api) -> None:
    """No timing oracle: an unknown email is checked against a dummy hash, with the same
    argon2id work as a known one. (Counted, not timed: times on a shared machine vary more
    than the difference would.)"""
    passwords = api.app.state.auth.passwords
    real = passwords._hasher
    verified: list[str] = []

    class Counting:
        """The real hasher, counting what it verifies against."""

        def verify(self, password_hash: str, password: str) -> bool:
            verified.append(password_hash)
            return bool(real.verify(password_hash, password))

    passwords._hasher = Counting()
    try:
        for email in (SUPERADMIN[0], "ghost@example.com"):
            r = await api.request(
                "POST", "/auth/sign-in", json={"email": email, "password": "x" * 20}
            )
            assert r.status_code == 400
    finally:
        passwords._hasher = real
    assert len(verified) == 2, "one argon2id verification each, known account or not"
    known, unknown = verified
    assert known != unknown and known.split("$")[:4] == unknown.split("$")[:4], "same cost"


async def test_email_is_case_insensitive(api: Api) -> None:
    r = await api.request(
        "POST", "/auth/sign-in", json={"email": SUPERADMIN[0].upper(), "password": SUPERADMIN[1]}
    )
    assert r.status_code == 200


async def test_unapproved_agency_cannot_sign_in_until_approved(api: Api) -> None:
    agency_id, owner, _ = await api.register_agency(approved=False)
    body = {"email": owner, "password": PASSWORD}
    r = await api.request("POST", "/auth/sign-in", json=body)
    assert r.status_code == 400
    assert r.json()["message"] == "your agency is not approved by administrators"
    admin = await api.superadmin()
    await api.request(
        "PATCH", f"/admin/agencies/{agency_id}/verify", admin, json={"approved": True}
    )
    assert (await api.request("POST", "/auth/sign-in", json=body)).status_code == 200


async def test_revoking_approval_locks_out_existing_tokens(api: Api) -> None:
    agency_id, _owner, token = await api.register_agency()
    assert (await api.request("GET", "/profile", token)).status_code == 200
    admin = await api.superadmin()
    await api.request(
        "PATCH", f"/admin/agencies/{agency_id}/verify", admin, json={"approved": False}
    )
    assert (await api.request("GET", "/profile", token)).status_code == 403


async def test_sign_out_revokes_earlier_tokens_only(api: Api) -> None:
    first = await api.superadmin()
    second = await api.superadmin()
    r = await api.request("POST", "/auth/sign-out", first)
    assert r.status_code == 200 and r.content == b""
    for token in (first, second):
        r = await api.request("GET", "/profile", token)
        assert r.status_code == 403
        assert r.json() == {
            "statusCode": 403,
            "message": "Forbidden resource",
            "error": "Forbidden",
        }
    fresh = await api.superadmin()
    assert (await api.request("GET", "/profile", fresh)).status_code == 200


async def test_sign_out_updates_time_sign_out_through_the_bus(api: Api) -> None:
    token = await api.superadmin()
    before = (await api.request("GET", "/profile", token)).json()["timeSignOut"]
    await api.request("POST", "/auth/sign-out", token)
    fresh = await api.superadmin()
    for _ in range(50):
        after = (await api.request("GET", "/profile", fresh)).json()["timeSignOut"]
        if after != before:
            break
        await asyncio.sleep(0.05)
    assert after > before


async def test_sign_out_needs_a_valid_token(api: Api) -> None:
    assert (await api.request("POST", "/auth/sign-out")).status_code == 403
    assert (await api.request("POST", "/auth/sign-out", "organizer:garbage")).status_code == 403


async def test_change_password(api: Api) -> None:
    _a, owner, token = await api.register_agency()
    new = "a-brand-new-password-123"
    body = {"oldPassword": PASSWORD, "newPassword": new, "confirmNewPassword": new}
    r = await api.request("PATCH", "/profile/change-password", token, json=body)
    assert r.status_code == 200, r.text
    assert r.json()["email"] == owner
    assert (await api.request("GET", "/profile", token)).status_code == 403
    r = await api.request("POST", "/auth/sign-in", json={"email": owner, "password": PASSWORD})
    assert r.status_code == 400
    assert await api.sign_in(owner, new)


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (
            {
                "oldPassword": "wrong-old-password-xx",
                "newPassword": "n" * 20,
                "confirmNewPassword": "n" * 20,
            },
            400,
            "old password is incorrect",
        ),
        (
            {"oldPassword": PASSWORD, "newPassword": "n" * 20, "confirmNewPassword": "m" * 20},
            400,
            "confirmNewPassword must be equal to newPassword",
        ),
        (
            {"oldPassword": PASSWORD, "newPassword": PASSWORD, "confirmNewPassword": PASSWORD},
            400,
            "newPassword must be different from oldPassword",
        ),
        (
            {"oldPassword": PASSWORD, "newPassword": "short", "confirmNewPassword": "short"},
            400,
            "newPassword must be longer than or equal to 16 characters",
        ),
        (
            {"oldPassword": PASSWORD, "newPassword": "n" * 129, "confirmNewPassword": "n" * 129},
            400,
            "newPassword must be shorter than or equal to 128 characters",
        ),
    ],
)
async def test_change_password_refusals(
    api: Api, body: dict[str, str], status: int, fragment: str
) -> None:
    _a, _owner, token = await api.register_agency()
    r = await api.request("PATCH", "/profile/change-password", token, json=body)
    assert r.status_code == status
    assert fragment in json.dumps(r.json()["message"])
    assert (await api.request("GET", "/profile", token)).status_code == 200


async def test_sign_in_is_throttled_per_account(api: Api) -> None:
    body = {"email": SUPERADMIN[0], "password": "wrong-password-long-enough"}
    codes = [(await api.request("POST", "/auth/sign-in", json=body)).status_code for _ in range(12)]
    assert codes[:10] == [400] * 10
    assert codes[10:] == [429, 429]
    r = await api.request(
        "POST", "/auth/sign-in", json={"email": SUPERADMIN[0], "password": SUPERADMIN[1]}
    )
    assert r.status_code == 429
    assert r.json()["error"] == "Too Many Requests"


async def test_rotation_keeps_earlier_tokens_valid(api: Api) -> None:
    token = await api.superadmin()
    keys = api.app.state.auth.keys
    await keys.rotate()
    assert (await api.request("GET", "/profile", token)).status_code == 200
    newer = await api.superadmin()
    assert newer.split(".")[0] != token.split(".")[0]
    jwks = (await api.client.get("/auth-api/.well-known/jwks.json")).json()
    assert len(jwks["keys"]) == 2
