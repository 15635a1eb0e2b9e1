"""The demo data a new user signs in with (README's quick start)."""

from __future__ import annotations

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
