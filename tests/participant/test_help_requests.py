"""Event search from the read model, and help requests from asking to the end of a chat."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from aidpost.core.bus import Event, Subscription
from tests.conftest import Api
from tests.participant.test_participant_auth import call, sign_up

API_KEY = {"Authorization": "Bearer dev-api-key-not-for-production"}


def hours(n: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(hours=n)).isoformat()


async def settle(api: Api) -> None:
    """Let the participant component catch up with the organizer's changes."""
    state = api.app.state
    for _ in range(200):
        await state.organizer_relay.relay_once()
        if state.runtime.bus.lag("organizer.changes", "participant-read-model") == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the read model did not catch up")


async def running_event(api: Api, **overrides: Any) -> tuple[dict[str, Any], str]:
    """An approved agency's event that runs now; returns (event, owner token)."""
    _a, _o, owner = await api.register_agency()
    assert owner is not None
    event = await api.add_event(owner, timeStart=hours(-1), timeEnd=hours(5), **overrides)
    await settle(api)
    return event, owner


async def test_search_sees_organizer_changes(api: Api) -> None:
    token = (await sign_up(api))["token"]
    event, owner = await running_event(api, name="Open Air Jazz", address="Łąkowa 5, Gdańsk")
    past = await api.add_event(owner, timeStart=hours(-30), timeEnd=hours(-2))
    await settle(api)

    async def names(query: str = "") -> list[str]:
        r = await call(api, "GET", "/events" + query, token)
        assert r.status_code == 200, r.text
        return [e["name"] for e in r.json()]

    assert await names() == ["Open Air Jazz"], "events that are over are not found"
    assert await names("?query=JAZZ") == ["Open Air Jazz"]
    assert await names("?query=łąkowa") == ["Open Air Jazz"]
    assert await names("?query=rock") == []
    assert await names(f"?from={hours(1).replace('+', '%2B')}") == []
    r = await call(api, "GET", "/events?from=yesterday", token)
    assert r.status_code == 400
    assert r.json()["message"] == "invalid format of `from` filter value; RFC3339 required"
    r = await call(api, "GET", f"/events/{event['id']}", token)
    assert r.json() == {**event, "isChatRequested": False}
    assert (await call(api, "GET", f"/events/{past['id']}", token)).status_code == 404
    r = await call(api, "GET", "/events/abc", token)
    assert r.status_code == 400 and r.json()["message"] == "invalid `id` route parameter"

    await api.request("PATCH", f"/agency/events/{event['id']}", owner, json={"name": "Renamed"})
    await settle(api)
    assert await names() == ["Renamed"]
    admin = await api.superadmin()
    await api.request(
        "PATCH", f"/admin/agencies/{event['agencyId']}/verify", admin, json={"approved": False}
    )
    await settle(api)
    assert await names() == [], "an agency that is not approved has no events to find"
    r = await call(
        api, "POST", "/chat-requests", token, json={"eventId": event["id"], "description": "x"}
    )
    assert r.status_code == 404 and r.json()["message"] == f"event with id {event['id']} not found"


async def test_request_wait_cancel_and_ask_again(api: Api) -> None:
    event, _owner = await running_event(api)
    ala = (await sign_up(api, "ala@example.com"))["token"]
    ola = (await sign_up(api, "ola@example.com"))["token"]
    body = {
        "eventId": event["id"],
        "description": "I need medical assistance",
        "problemType": "medical",
        "lat": 52.1,
        "lng": 21.0,
    }
    r = await call(api, "POST", "/chat-requests", ala, json=body)
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["status"] == "waiting" and first["position"] == 1
    assert first["estimatedWaitSeconds"] is None, "no claims yet: the wait is unknown"
    again = await call(api, "POST", "/chat-requests", ala, json=body)
    assert again.status_code == 400 and again.json()["message"] == "chat request already exists"
    second = (await call(api, "POST", "/chat-requests", ola, json=body)).json()
    assert second["position"] == 2

    r = await call(api, "GET", "/chat-requests", ala, content=f'{{"eventId": {event["id"]}}}')
    assert r.json() == {"result": True}
    r = await call(api, "GET", f"/chat-requests?eventId={event['id']}", ola)
    assert r.json() == {"result": True}
    assert (await call(api, "GET", f"/events/{event['id']}", ala)).json()["isChatRequested"] is True

    r = await call(api, "DELETE", f"/help-requests/{first['id']}", ala)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert (await call(api, "GET", f"/help-requests/{second['id']}", ola)).json()["position"] == 1
    assert (await call(api, "GET", f"/events/{event['id']}", ala)).json()[
        "isChatRequested"
    ] is False
    r = await call(api, "DELETE", f"/help-requests/{first['id']}", ala)
    assert r.status_code == 400
    r = await call(api, "GET", f"/help-requests/{second['id']}", ala)
    assert r.status_code == 404, "another participant's request is not yours to see"
    r = await call(api, "POST", "/chat-requests", ala, json=body)
    assert r.status_code == 200 and r.json()["position"] == 2
    listed = (await call(api, "GET", "/help-requests", ala)).json()
    assert [x["status"] for x in listed] == ["waiting", "cancelled"]


async def test_request_events_reach_the_bus_and_chats_move_requests_on(api: Api) -> None:
    event, _owner = await running_event(api)
    token = (await sign_up(api))["token"]
    body = {"eventId": event["id"], "description": "lost my child"}
    created = (await call(api, "POST", "/chat-requests", token, json=body)).json()
    bus = api.app.state.runtime.bus
    await api.app.state.participant_relay.relay_once()
    seen: list[Event] = []

    async def collect(e: Event) -> None:
        seen.append(e)

    await Subscription(bus, "help.requests", "test-messenger", collect).run_once(block_ms=50)
    assert [(e.type, e.data["requestId"]) for e in seen] == [("help.requested.v1", created["id"])]
    assert seen[0].data["agencyId"] == event["agencyId"] and seen[0].data["problemType"] == "other"

    started = Event("chat.started.v1", {"requestId": created["id"], "chatId": "c-1"})
    await bus.publish("messenger.chats", [started, started])  # a redelivery changes nothing
    for _ in range(100):
        now = (await call(api, "GET", f"/help-requests/{created['id']}", token)).json()
        if now["status"] == "claimed":
            break
        await asyncio.sleep(0.02)
    assert now["status"] == "claimed" and now["chatId"] == "c-1" and now["position"] is None
    r = await call(api, "DELETE", f"/help-requests/{created['id']}", token)
    assert r.status_code == 400, "a request in a chat cannot be cancelled"
    assert (await call(api, "POST", "/chat-requests", token, json=body)).status_code == 400

    await bus.publish("messenger.chats", [Event("chat.closed.v1", {"requestId": created["id"]})])
    for _ in range(100):
        now = (await call(api, "GET", f"/help-requests/{created['id']}", token)).json()
        if now["status"] == "closed":
            break
        await asyncio.sleep(0.02)
    assert now["status"] == "closed"
    assert (await call(api, "POST", "/chat-requests", token, json=body)).status_code == 200


async def test_wait_estimate_follows_the_agency_throughput(api: Api) -> None:
    event, _owner = await running_event(api)
    tokens = [(await sign_up(api, f"p{i}@example.com"))["token"] for i in range(4)]
    ids = []
    for t in tokens:
        r = await call(
            api, "POST", "/chat-requests", t, json={"eventId": event["id"], "description": "help"}
        )
        ids.append(r.json()["id"])
    bus = api.app.state.runtime.bus
    await bus.publish(
        "messenger.chats", [Event("chat.started.v1", {"requestId": ids[0], "chatId": "a"})]
    )
    for _ in range(100):
        last = (await call(api, "GET", f"/help-requests/{ids[3]}", tokens[3])).json()
        if last["position"] == 3:
            break
        await asyncio.sleep(0.02)
    # one claim in the last minute or so: about 60 s per place in the queue
    assert last["position"] == 3 and 150 <= last["estimatedWaitSeconds"] <= 200


async def test_internal_lock_release_and_users(api: Api) -> None:
    event, _owner = await running_event(api)
    created = await sign_up(api)
    token, user = created["token"], created["user"]
    await call(
        api, "POST", "/chat-requests", token, json={"eventId": event["id"], "description": "x"}
    )
    release = {"participantId": user["id"], "eventId": event["id"]}
    r = await call(api, "DELETE", "/chat-requests", json=release)
    assert r.status_code == 401 and r.json()["message"] == "invalid api key"
    r = await call(
        api, "DELETE", "/chat-requests", headers={"Authorization": "Bearer wrong"}, json=release
    )
    assert r.status_code == 401
    r = await call(api, "DELETE", "/chat-requests", headers=dict(API_KEY), json=release)
    assert r.status_code == 200
    assert (await call(api, "GET", f"/events/{event['id']}", token)).json()[
        "isChatRequested"
    ] is False
    r = await call(api, "DELETE", "/chat-requests", headers=dict(API_KEY), json=release)
    assert r.status_code == 200, "releasing twice is harmless"

    r = await call(
        api, "GET", "/users", headers=dict(API_KEY), content=f'{{"ids": [{user["id"]}, 999]}}'
    )
    assert r.json() == {str(user["id"]): user}
    r = await call(api, "GET", f"/users?ids={user['id']}", headers=dict(API_KEY))
    assert list(r.json()) == [str(user["id"])]
    for bad in ('{"ids": []}', '{"ids": ["a"]}', "[]", "{"):
        r = await call(api, "GET", "/users", headers=dict(API_KEY), content=bad)
        assert r.status_code == 400 and r.json()["message"] == "invalid request body", bad
    assert (await call(api, "GET", "/users", content='{"ids": [1]}')).status_code == 401


async def test_deleting_the_account_ends_waiting_requests(api: Api) -> None:
    event, _owner = await running_event(api)
    created = await sign_up(api)
    token = created["token"]
    req = (
        await call(
            api, "POST", "/chat-requests", token, json={"eventId": event["id"], "description": "x"}
        )
    ).json()
    await call(api, "DELETE", "/profile", token, json={"password": "participant-pass"})
    await api.app.state.participant_relay.relay_once()
    seen: list[Event] = []

    async def collect(e: Event) -> None:
        seen.append(e)

    bus = api.app.state.runtime.bus
    await Subscription(bus, "help.requests", "test-messenger", collect).run_once(block_ms=50)
    assert ("help.cancelled.v1", req["id"]) in [(e.type, e.data["requestId"]) for e in seen]
    await Subscription(bus, "participant.changes", "test-reader", collect).run_once(block_ms=50)
    assert any(e.type == "participant.deleted.v1" for e in seen)
    r = await call(
        api, "GET", "/users", headers=dict(API_KEY), content=f'{{"ids": [{created["user"]["id"]}]}}'
    )
    assert r.json() == {}


async def test_concurrent_requests_take_one_lock(api: Api) -> None:
    event, _owner = await running_event(api)
    token = (await sign_up(api))["token"]
    body = {"eventId": event["id"], "description": "x"}
    results = await asyncio.gather(
        *(call(api, "POST", "/chat-requests", token, json=body) for _ in range(8))
    )
    codes = sorted(r.status_code for r in results)
    assert codes == [200] + [400] * 7, [r.text for r in results]
