"""A help request acknowledged to the participant is delivered exactly once, even when the
process dies between the commit and the bus publish (or between publish and its record)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx
import pytest
import redis

from tests.conftest import REDIS_URL, require
from tests.contract.server import serve

PARTICIPANT = {"email": "participant@demo.aidpost.example", "password": "demo-password-1234"}


def _token(base: str) -> str:
    r = httpx.post(base + "/participant-api/auth/sign-in", json=PARTICIPANT, timeout=10)
    assert r.status_code == 200, r.text
    token: str = r.json()["token"]
    return token


def _demo_event(base: str, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(100):  # the read model fills through the bus after the demo is seeded
        events = httpx.get(base + "/participant-api/events", headers=headers, timeout=10).json()
        if events:
            return int(events[0]["id"])
        time.sleep(0.1)
    raise AssertionError("demo event never became searchable")


def _delivered(client: redis.Redis, prefix: str, request_id: int) -> list[str]:
    """Event ids of help.requested entries for this request in the Redis stream."""
    out = []
    for _entry_id, fields in client.xrange(prefix + "help.requests"):
        event = json.loads(fields[b"e"])
        if event["type"] == "help.requested.v1" and event["data"]["requestId"] == request_id:
            out.append(event["id"])
    return out


@pytest.mark.parametrize("fault", ["before_publish", "after_publish"])
def test_request_survives_a_crash_around_the_publish(tmp_path: Path, fault: str) -> None:
    require("redis")
    prefix = f"aidpost-test-{uuid.uuid4().hex[:8]}:"
    env = {"AIDPOST_BUS_URL": REDIS_URL, "AIDPOST_BUS_PREFIX": prefix}
    client = redis.Redis.from_url(REDIS_URL)
    try:
        with serve(tmp_path, env, "--demo") as base:
            token = _token(base)
            event_id = _demo_event(base, token)

        crash = {**env, "AIDPOST_FAULTS": f"outbox.{fault}:help.requests=exit"}
        with serve(tmp_path, crash) as base:
            body = {"eventId": event_id, "description": "I need medical assistance"}
            headers = {"Authorization": f"Bearer {token}"}
            try:
                r = httpx.post(base + "/participant-api/chat-requests", json=body, headers=headers)
                acknowledged = r.status_code == 200
            except httpx.HTTPError:
                acknowledged = False  # died before it could answer; the commit decides
            for _ in range(100):  # the relay runs right after the commit, and dies
                try:
                    httpx.get(base + "/status", timeout=0.5)
                except httpx.HTTPError:
                    break
                time.sleep(0.05)
            else:
                raise AssertionError("the fault did not fire")

        with serve(tmp_path, env) as base:
            headers = {"Authorization": f"Bearer {token}"}
            mine = httpx.get(base + "/participant-api/help-requests", headers=headers).json()
            assert len(mine) == 1, "the committed request is there after the crash"
            request_id = mine[0]["id"]
            if acknowledged:
                assert mine[0]["status"] == "waiting"
            expected = 1 if fault == "before_publish" else 2
            for _ in range(100):
                ids = _delivered(client, prefix, request_id)
                if len(ids) >= expected:
                    break
                time.sleep(0.05)
            time.sleep(0.5)  # and nothing more arrives
            ids = _delivered(client, prefix, request_id)
        if fault == "before_publish":
            assert len(ids) == 1, ids
        else:
            # published, then the process died before recording it: the restarted relay
            # publishes the same event again; consumers drop it by its id (inbox)
            assert len(ids) == 2 and len(set(ids)) == 1, ids
    finally:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()
