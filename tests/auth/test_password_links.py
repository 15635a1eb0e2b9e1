"""Password links, both realms: a reset asked for by the person, a setup link for staff
accounts made by someone else; single use, expiring, throttled, emailed by the mailer
(never a password), sessions ended when used."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from aidpost.core.settings import Settings
from aidpost.mailer.service import Filters
from tests.conftest import PASSWORD, Api, Databases, make_settings
from tests.participant.test_participant_auth import PW, call, sign_up

NEW_PASSWORD = "a-brand-new-password-2026"
RESET, CONFIRM = "/auth/password-reset", "/auth/password-reset/confirm"
LINK = re.compile(r"(http\S+)/(console|app)/set-password#token=([A-Za-z0-9_-]+)")


@pytest.fixture
def settings(databases: Databases, tmp_path: Path) -> Settings:
    return make_settings(
        databases, tmp_path, mailer_worker="false", mailer_public_url="https://help.example"
    )


async def mail_to(api: Api, address: str, subject_part: str) -> str:
    """Send what is due and return the text of the newest email to ``address``."""
    svc = api.app.state.mailer
    for _ in range(200):
        await svc.run_once()
        for message in reversed(svc.transport.sent):
            if address in str(message["To"]) and subject_part in str(message["Subject"]):
                body: str = message.get_content()
                return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"no email to {address} about {subject_part!r}")


async def organizer(api: Api, path: str, body: Any, token: str | None = None) -> httpx.Response:
    return await api.request("POST", path, token, json=body)


def token_in(mail: str) -> str:
    link = LINK.search(mail)
    assert link is not None, mail
    return link.group(3)


def use(token: Any, password: str = NEW_PASSWORD, confirm: str | None = None) -> dict[str, Any]:
    """A ``password-reset/confirm`` body."""
    return {"token": token, "password": password, "confirmPassword": confirm or password}


async def test_organizer_reset_from_request_to_new_password(api: Api) -> None:
    _agency, owner_email, owner_token = await api.register_agency(approved=True)
    unknown = await organizer(api, "/auth/password-reset", {"email": "nobody@example.com"})
    known = await organizer(api, "/auth/password-reset", {"email": owner_email.upper()})
    assert unknown.status_code == known.status_code == 200
    assert unknown.json() == known.json()  # no account enumeration

    body = await mail_to(api, owner_email.lower(), "Reset your aidpost password")
    base, where, token = LINK.search(body).groups()  # type: ignore[union-attr]
    assert (base, where) == ("https://help.example", "console")
    assert PASSWORD not in body

    wrong = await organizer(api, "/auth/password-reset/confirm", use(token[:-2] + "xx"))
    assert wrong.status_code == 400 and wrong.json()["message"] == "invalid or expired token"
    r = await organizer(api, "/auth/password-reset/confirm", use(token))
    assert r.status_code == 200, r.text
    assert (await api.request("GET", "/profile", owner_token)).status_code == 403  # ended
    assert await api.sign_in(owner_email, NEW_PASSWORD)
    again = await organizer(api, "/auth/password-reset/confirm", use(token, PASSWORD))
    assert again.status_code == 400  # single use

    # the stored email keeps no token once sent
    _total, emails = await api.app.state.mailer.emails(Filters(job="password-reset"))
    assert emails and all(token not in e.context and "token" not in e.context for e in emails)


async def test_a_newer_link_replaces_the_older_and_links_expire(
    api: Api, databases: Databases
) -> None:
    _agency, owner_email, _ = await api.register_agency(approved=True)
    await organizer(api, "/auth/password-reset", {"email": owner_email})
    first = token_in(await mail_to(api, owner_email.lower(), "Reset"))
    api.app.state.mailer.transport.sent.clear()
    await organizer(api, "/auth/password-reset", {"email": owner_email})
    second = token_in(await mail_to(api, owner_email.lower(), "Reset"))
    assert (await organizer(api, CONFIRM, use(first))).status_code == 400
    auth_db = api.app.state.runtime.database(api.app.state.runtime.settings.auth_db)
    async with auth_db.transaction() as session:
        await session.execute(text("UPDATE auth_password_tokens SET expires_at = created_at"))
    r = await organizer(api, "/auth/password-reset/confirm", use(second))
    assert r.status_code == 400 and r.json()["message"] == "invalid or expired token"


async def test_resets_are_throttled(api: Api) -> None:
    for _ in range(5):
        assert (
            await organizer(api, "/auth/password-reset", {"email": "a@example.com"})
        ).status_code == 200
    r = await organizer(api, "/auth/password-reset", {"email": "a@example.com"})
    assert r.status_code == 429
    assert r.json()["message"] == "too many password reset requests, try again later"


async def test_participant_reset(api: Api) -> None:
    await sign_up(api, "runner@example.com")
    r = await call(api, "POST", "/auth/password-reset", json={"email": "runner@example.com"})
    assert r.status_code == 200
    link = LINK.search(await mail_to(api, "runner@example.com", "Reset"))
    assert link is not None and link.group(2) == "app"
    r = await call(api, "POST", "/auth/password-reset/confirm", json=use(link.group(3)))
    assert r.status_code == 200, r.text
    r = await call(api, "POST", "/auth/sign-in",
                   json={"email": "runner@example.com", "password": NEW_PASSWORD})  # fmt: skip
    assert r.status_code == 200
    # an organizer link does not work in the participant realm, nor the reverse
    r = await call(api, "POST", "/auth/password-reset/confirm", json=use(link.group(3), PW))
    assert r.status_code == 400


async def test_staff_made_by_others_get_a_setup_link_never_a_password(api: Api) -> None:
    _agency, owner_email, owner_token = await api.register_agency(approved=True)
    body = api.user_body(4)
    r = await api.request("POST", "/agency/users", owner_token, json=body)
    assert r.status_code == 201
    mail = await mail_to(api, body["email"].lower(), "Your aidpost staff account, Ula")
    assert body["password"] not in mail
    token = LINK.search(mail).group(3)  # type: ignore[union-attr]
    r = await organizer(api, "/auth/password-reset/confirm", use(token))
    assert r.status_code == 200
    assert await api.sign_in(body["email"], NEW_PASSWORD)
    _admin_id, _ = await api.add_admin()  # administrators too
    sent = api.app.state.mailer.transport.sent
    await mail_to(api, "@example.com", "Your aidpost staff account")
    setup = [m for m in sent if "staff account" in str(m["Subject"])]
    assert owner_email.lower() not in {str(m["To"]) for m in setup}  # owners register themselves


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        (RESET, {}, "email should not be empty"),
        (RESET, {"email": "x@example.com", "more": 1}, "property more should not exist"),
        (RESET, {"email": "no\r\nBcc: x@example.com"}, "email must be an email"),
        (CONFIRM, use("t", "short"), "password must be longer than or equal to 16 characters"),
        (CONFIRM, use("t", NEW_PASSWORD, "other"), "confirmPassword must be equal to password"),
        (CONFIRM, use("t" * 201), "token must be shorter than or equal to 200 characters"),
        (CONFIRM, use(5), "token must be a string"),
    ],
)
async def test_organizer_bad_input(api: Api, path: str, body: Any, message: str) -> None:
    r = await organizer(api, path, body)
    assert r.status_code == 400, r.text
    got = r.json()
    messages = got["message"] if isinstance(got["message"], list) else [got["message"]]
    assert any(message in m for m in messages), got


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (RESET, b"not json"),
        (RESET, b"[]"),
        (RESET, b'{"email": 5}'),
        (CONFIRM, json.dumps(use("")).encode()),
        (CONFIRM, json.dumps(use("t", NEW_PASSWORD, "x")).encode()),
        (CONFIRM, json.dumps(use("t", "short")).encode()),
    ],
)
async def test_participant_bad_input(api: Api, path: str, body: bytes) -> None:
    r = await call(api, "POST", path, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["statusCode"] == 400 and r.json()["message"]


async def test_using_a_link_or_changing_the_password_ends_every_other_link(api: Api) -> None:
    _agency, _owner, owner_token = await api.register_agency(approved=True)
    body = api.user_body(4)
    assert (await api.request("POST", "/agency/users", owner_token, json=body)).status_code == 201
    setup = token_in(await mail_to(api, body["email"].lower(), "staff account"))
    await organizer(api, RESET, {"email": body["email"]})
    reset = token_in(await mail_to(api, body["email"].lower(), "Reset"))
    assert (await organizer(api, CONFIRM, use(reset))).status_code == 200
    assert (await organizer(api, CONFIRM, use(setup))).status_code == 400  # used up too

    api.app.state.mailer.transport.sent.clear()
    await organizer(api, RESET, {"email": body["email"]})
    later = token_in(await mail_to(api, body["email"].lower(), "Reset"))
    assert later != reset
    token = await api.sign_in(body["email"], NEW_PASSWORD)
    change = {"oldPassword": NEW_PASSWORD, "newPassword": PASSWORD, "confirmNewPassword": PASSWORD}
    r = await api.request("PATCH", "/profile/change-password", token, json=change)
    assert r.status_code == 200, r.text
    assert (await organizer(api, CONFIRM, use(later))).status_code == 400
