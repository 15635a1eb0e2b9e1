"""The components as separate processes, as containers run them: auth, organizer and
participant on PostgreSQL with the Redis bus. Tokens verify through auth's JWKS, and a
sign-out reaches the other processes within a second."""

from __future__ import annotations

import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import httpx

from tests.conftest import REDIS_URL, SUPERADMIN, Databases, drop_redis_keys, require
from tests.contract.server import serve


def test_sign_out_reaches_other_processes_within_a_second(
    databases: Databases, tmp_path: Path
) -> None:
    require("redis")
    env = {
        "AIDPOST_AUTH_DATABASE_URL": databases.urls["auth"],
        "AIDPOST_ORGANIZER_DATABASE_URL": databases.urls["organizer"],
        "AIDPOST_PARTICIPANT_DATABASE_URL": databases.urls["participant"],
        "AIDPOST_BUS_URL": REDIS_URL,
        "AIDPOST_BUS_PREFIX": f"aidpost-test-{uuid.uuid4().hex[:8]}:",
        "AIDPOST_AUTH_SUPERADMIN_EMAIL": SUPERADMIN[0],
        "AIDPOST_AUTH_SUPERADMIN_PASSWORD": SUPERADMIN[1],
    }
    with ExitStack() as stack:
        organizer_dir, auth_dir = tmp_path / "organizer", tmp_path / "auth"
        organizer_dir.mkdir()
        auth_dir.mkdir()
        # Auth may start first: sign-in works once the organizer has created its tables.
        auth = stack.enter_context(serve(auth_dir, env, "--component", "auth"))
        organizer = stack.enter_context(
            serve(organizer_dir, {**env, "AIDPOST_AUTH_URL": auth}, "--component", "organizer")
        )
        assert httpx.get(organizer + "/status").json()["component"] == "organizer"
        sign_in = {"email": SUPERADMIN[0], "password": SUPERADMIN[1]}
        for _ in range(100):  # the organizer creates the superadmin as it starts
            r = httpx.post(auth + "/organizer-api/auth/sign-in", json=sign_in)
            if r.status_code == 200:
                break
            time.sleep(0.1)
        token = r.json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(organizer + "/organizer-api/profile", headers=headers).status_code == 200
        # the organizer process does not serve auth's routes, nor auth the organizer's
        assert httpx.get(auth + "/organizer-api/profile", headers=headers).status_code == 404

        assert httpx.post(auth + "/organizer-api/auth/sign-out", headers=headers).status_code == 200
        signed_out = time.monotonic()
        while httpx.get(organizer + "/organizer-api/profile", headers=headers).status_code == 200:
            assert time.monotonic() - signed_out < 1.0, "revocation took over a second"
            time.sleep(0.02)
        elapsed = time.monotonic() - signed_out
        print(f"revocation reached the organizer process in {elapsed * 1000:.0f} ms")
    drop_redis_keys(env["AIDPOST_BUS_PREFIX"])
