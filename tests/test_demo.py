"""The demo data a new user signs in with (README's quick start)."""

from __future__ import annotations

import asyncio

from aidpost.demo import DEMO_PASSWORD, seed_all
from tests.conftest import Api


async def test_demo_accounts_sign_in_and_seeding_is_idempotent(api: Api) -> None:
    runtime = api.app.state.runtime
    first = await seed_all(runtime)
    again = await seed_all(runtime)
    assert first == again
    for who, email, password in first:
        realm = "participant" if who == "participant" else "organizer"
        r = await api.client.post(
            f"/{realm}-api/auth/sign-in", json={"email": email, "password": password}
        )
        assert r.status_code == 200, (who, r.text)
        assert password == DEMO_PASSWORD
    owner = await api.sign_in("owner@demo.aidpost.example", DEMO_PASSWORD)
    events = (await api.request("GET", "/agency/events", owner)).json()
    assert len(events) == 1
    event = events[0]
    now = runtime.clock.now().isoformat()
    assert event["timeStart"] < now[:19] + "Z" < event["timeEnd"], "the demo event runs now"
    users = (await api.request("GET", "/agency/users", owner)).json()
    assert sorted(u["role"] for u in users) == [2, 3, 4]


async def test_new_participant_journey_on_the_demo(api: Api) -> None:
    """README's story: sign up, find the demo event, ask for help, see the queue, cancel,
    ask again."""
    runtime = api.app.state.runtime
    await seed_all(runtime)
    for _ in range(200):
        await api.app.state.organizer_relay.relay_once()
        if runtime.bus.lag("organizer.changes", "participant-read-model") == 0:
            break
        await asyncio.sleep(0.01)
    body = {
        "email": "new@example.com",
        "password": "new-participant",
        "confirmPassword": "new-participant",
    }
    r = await api.client.post("/participant-api/auth/sign-up", json=body)
    assert r.status_code == 201
    headers = {"Authorization": f"Bearer {r.json()['token']}"}
    found = (await api.client.get("/participant-api/events?query=summer", headers=headers)).json()
    assert [e["name"] for e in found] == ["Demo Summer Festival"]
    ask = {
        "eventId": found[0]["id"],
        "description": "I need medical assistance",
        "problemType": "medical",
    }
    first = (
        await api.client.post("/participant-api/chat-requests", json=ask, headers=headers)
    ).json()
    assert first["status"] == "waiting" and first["position"] == 1
    r = await api.client.delete(f"/participant-api/help-requests/{first['id']}", headers=headers)
    assert r.json()["status"] == "cancelled"
    again = await api.client.post("/participant-api/chat-requests", json=ask, headers=headers)
    assert again.status_code == 200 and again.json()["position"] == 1
