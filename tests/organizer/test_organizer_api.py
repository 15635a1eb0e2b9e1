"""The Organizer API's behaviour, endpoint by endpoint (ESME's contract plus our fixes)."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import PASSWORD, Api


async def test_register_agency_returns_unapproved_agency(api: Api) -> None:
    body = {
        "agency": {"name": "Safe Fest", "address": "Street 1", "website": "safefest.example.com"},
        "owner": {
            "email": "own@example.com",
            "password": PASSWORD,
            "confirmPassword": PASSWORD,
            "firstName": "O",
            "lastName": "W",
            "phoneNumber": "+48123456789",
        },
    }
    r = await api.request("POST", "/agency", json=body)
    assert r.status_code == 201
    assert r.json() == {
        "id": r.json()["id"],
        "name": "Safe Fest",
        "address": "Street 1",
        "website": "safefest.example.com",
        "approved": False,
    }
    again = await api.request("POST", "/agency", json=body)
    assert again.status_code == 400 and again.json()["message"] == "Agency name is already taken"
    body["agency"]["name"] = "Other"
    again = await api.request("POST", "/agency", json=body)
    assert again.json()["message"] == "Owner email is already taken"
    body["owner"]["email"] = "OWN@example.com"
    again = await api.request("POST", "/agency", json=body)
    assert again.json()["message"] == "Owner email is already taken"


async def test_register_agency_is_all_or_nothing(api: Api) -> None:
    """A refused owner leaves no agency behind (ESME's one transaction, kept)."""
    admin = await api.superadmin()
    before = (await api.request("GET", "/admin/agencies", admin)).json()
    body = {
        "agency": {"name": "Half", "address": "A", "website": "https://half.example.com"},
        "owner": {"email": "x@example.com", "password": PASSWORD, "confirmPassword": "nope"},
    }
    assert (await api.request("POST", "/agency", json=body)).status_code == 400
    assert (await api.request("GET", "/admin/agencies", admin)).json() == before


async def test_profile_read_and_update(api: Api) -> None:
    _a, _o, token = await api.register_agency()
    r = await api.request(
        "PATCH", "/profile", token, json={"firstName": "Zofia", "phoneNumber": "+48500600700"}
    )
    assert r.status_code == 200
    assert r.json()["firstName"] == "Zofia" and r.json()["phoneNumber"] == "+48500600700"
    r = await api.request("PATCH", "/profile", token, json={"phoneNumber": "12"})
    assert r.status_code == 400 and r.json()["message"] == [
        "phoneNumber must be a valid phone number"
    ]
    r = await api.request("PATCH", "/profile", token, json={"email": "new@example.com"})
    assert r.json()["message"] == ["property email should not exist"]


async def test_agency_get_update_and_name_clash(api: Api) -> None:
    agency_id, _o, token = await api.register_agency()
    _other_id, _o2, other = await api.register_agency()
    r = await api.request("GET", "/agency", token)
    assert r.status_code == 200 and r.json()["id"] == agency_id
    r = await api.request("PATCH", "/agency", token, json={"address": "New Street 5"})
    assert r.json()["address"] == "New Street 5"
    other_name = (await api.request("GET", "/agency", other)).json()["name"]
    r = await api.request("PATCH", "/agency", token, json={"name": other_name})
    assert r.status_code == 400 and r.json()["message"] == "Agency name is already taken"
    r = await api.request("PATCH", "/agency", token, json={"approved": True})
    assert r.status_code == 400


async def test_delete_agency_removes_staff_and_data_but_keeps_audit(api: Api) -> None:
    agency_id, _owner, token = await api.register_agency()
    support_id, support = await api.add_user(token, 4)
    event = await api.add_event(token)
    r = await api.request("DELETE", "/agency", token)
    assert r.status_code == 200 and r.json()["id"] == agency_id
    admin = await api.superadmin()
    assert (await api.request("GET", f"/admin/agencies/{agency_id}", admin)).status_code == 404
    assert (await api.request("GET", f"/admin/users/{support_id}", admin)).status_code == 404
    assert (await api.request("GET", "/profile", support)).status_code == 403
    logs = (await api.request("GET", f"/admin/changelogs?agencyId={agency_id}", admin)).json()
    kinds = {(c["entityClass"], c["type"]) for c in logs}
    assert ("Agency", "delete") in kinds and ("Event", "insert") in kinds
    assert any(c["entityClass"] == "Event" and c["entityId"] == event["id"] for c in logs)


async def test_admin_preview_of_an_agency(api: Api) -> None:
    agency_id, _o, owner = await api.register_agency()
    await api.add_event(owner)
    _id, admin = await api.add_admin()
    r = await api.request("GET", "/agency/events", admin)
    assert r.status_code == 403 and r.json()["message"] == "Choose an agency to preview first"
    r = await api.request("PATCH", "/profile/set-agency", admin, json={"agencyId": agency_id})
    assert r.status_code == 200 and r.json()["agencyId"] == agency_id
    assert len((await api.request("GET", "/agency/events", admin)).json()) == 1
    r = await api.request("PATCH", "/profile/set-agency", admin, json={"agencyId": 999999})
    assert r.status_code == 404
    r = await api.request("PATCH", "/profile/set-agency", admin, json={})
    assert r.json()["agencyId"] is None
    r = await api.request("PATCH", "/profile/set-agency", owner, json={"agencyId": agency_id})
    assert r.status_code == 403


async def test_admin_users_and_roles(api: Api) -> None:
    root = await api.superadmin()
    roles = (await api.request("GET", "/admin/users/roles", root)).json()
    assert roles == [
        {"key": 1, "value": "Admin"},
        {"key": 2, "value": "Agency owner"},
        {"key": 3, "value": "Agency manager"},
        {"key": 4, "value": "Agency support"},
    ]
    admin_id, admin = await api.add_admin()
    listed = (await api.request("GET", "/admin/users", root)).json()
    assert {u["role"] for u in listed} <= {0, 1} and admin_id in {u["id"] for u in listed}
    r = await api.request("PATCH", f"/admin/users/{admin_id}", root, json={"lastName": "Nowak"})
    assert r.json()["lastName"] == "Nowak"
    r = await api.request("POST", "/admin/users", admin, json=api.user_body(1))
    assert r.status_code == 403
    assert r.json()["message"] == "Not allowed to create user with same role or senior"
    r = await api.request(
        "POST", "/admin/users", root, json=api.user_body(1, email="dup@example.com")
    )
    assert r.status_code == 201
    r = await api.request(
        "POST", "/admin/users", root, json=api.user_body(1, email="Dup@example.com")
    )
    assert r.status_code == 400 and r.json()["message"] == "Email is already taken"
    r = await api.request("DELETE", f"/admin/users/{admin_id}", root)
    assert r.status_code == 200 and r.json()["id"] == admin_id
    assert (await api.request("GET", "/profile", admin)).status_code == 403
    assert (await api.request("GET", f"/admin/users/{admin_id}", root)).json()["message"] == (
        f"User with id {admin_id} not found"
    )


async def test_agency_users_crud_and_seniority(api: Api) -> None:
    agency_id, _o, owner = await api.register_agency()
    roles = (await api.request("GET", "/agency/users/roles", owner)).json()
    assert [r["key"] for r in roles] == [2, 3, 4]
    manager_id, manager = await api.add_user(owner, 3)
    support_id, _support = await api.add_user(manager, 4)
    r = await api.request("POST", "/agency/users", manager, json=api.user_body(3))
    assert r.status_code == 403
    r = await api.request("PATCH", f"/agency/users/{support_id}", manager, json={"role": 3})
    assert r.status_code == 403
    r = await api.request("PATCH", f"/agency/users/{support_id}", owner, json={"role": 3})
    assert r.status_code == 200 and r.json()["role"] == 3
    users = (await api.request("GET", "/agency/users", owner)).json()
    assert {u["agencyId"] for u in users} == {agency_id} and len(users) == 3
    r = await api.request("DELETE", f"/agency/users/{manager_id}", owner)
    assert r.status_code == 200 and r.json()["id"] == manager_id
    r = await api.request("GET", f"/agency/users/{manager_id}", owner)
    assert r.status_code == 404
    assert r.json()["message"] == f"User with id {manager_id} not found in agency {agency_id}"


async def test_events_crud(api: Api) -> None:
    agency_id, _o, owner = await api.register_agency()
    event = await api.add_event(owner, lat="52.5", timeStart="2026-07-01T12:00")
    assert event["lat"] == 52.5 and event["agencyId"] == agency_id
    assert event["timeStart"] == "2026-07-01T12:00:00.000Z"
    r = await api.request("POST", "/agency/events", owner, json=api.event_body(name=event["name"]))
    assert r.status_code == 400 and r.json()["message"] == "Name is already taken"
    r = await api.request(
        "POST", "/agency/events", owner, json=api.event_body(timeEnd="2026-06-01T00:00:00Z")
    )
    assert r.status_code == 400
    r = await api.request(
        "PATCH", f"/agency/events/{event['id']}", owner, json={"address": "Elsewhere"}
    )
    assert r.status_code == 200 and r.json()["address"] == "Elsewhere"
    r = await api.request(
        "PATCH", f"/agency/events/{event['id']}", owner, json={"timeEnd": "2020-01-01T00:00:00Z"}
    )
    assert r.status_code == 400
    listed = (await api.request("GET", "/agency/events", owner)).json()
    assert [e["id"] for e in listed] == [event["id"]]
    r = await api.request("DELETE", f"/agency/events/{event['id']}", owner)
    assert r.status_code == 200 and r.json()["id"] == event["id"]
    r = await api.request("GET", f"/agency/events/{event['id']}", owner)
    assert r.json()["message"] == f"Event with id {event['id']} not found in agency {agency_id}"


async def test_contacts_crud(api: Api) -> None:
    _a, _o, owner = await api.register_agency()
    _b, _o2, other = await api.register_agency()
    event = await api.add_event(owner)
    foreign = await api.add_event(other)
    body: dict[str, Any] = {
        "firstName": "Ewa",
        "lastName": "Medic",
        "email": "ewa@example.com",
        "phoneNumber": "+48123456789",
        "additionalNotes": "",
        "eventId": event["id"],
    }
    r = await api.request("POST", "/agency/contacts", owner, json=body)
    assert r.status_code == 201, r.text
    contact = r.json()
    r = await api.request(
        "POST", "/agency/contacts", owner, json={**body, "eventId": foreign["id"]}
    )
    assert r.status_code == 404
    assert (await api.request("GET", f"/agency/contacts?eventId={event['id']}", owner)).json() == [
        contact
    ]
    assert (
        await api.request("GET", f"/agency/contacts?eventId={foreign['id']}", owner)
    ).json() == []
    r = await api.request(
        "PATCH", f"/agency/contacts/{contact['id']}", owner, json={"additionalNotes": "Tent 4"}
    )
    assert r.json()["additionalNotes"] == "Tent 4"
    r = await api.request("GET", f"/agency/contacts/{contact['id']}", other)
    assert (
        r.status_code == 404 and r.json()["message"] == f"Contact with id {contact['id']} not found"
    )
    assert (await api.request("DELETE", f"/agency/contacts/{contact['id']}", owner)).json()[
        "id"
    ] == contact["id"]


async def test_issue_lifecycle_sets_and_clears_time_closed(api: Api) -> None:
    _a, _o, owner = await api.register_agency()
    _sid, support = await api.add_user(owner, 4)
    event = await api.add_event(owner)
    body = {
        "name": "Lost child",
        "description": "Near stage A",
        "priority": "high",
        "eventId": event["id"],
    }
    r = await api.request("POST", "/agency/issues", support, json=body)
    assert r.status_code == 201
    issue = r.json()
    assert issue["status"] == "to_do" and issue["timeClosed"] is None
    r = await api.request("POST", "/agency/issues", support, json={**body, "status": "resolved"})
    assert r.status_code == 400
    path = f"/agency/issues/{issue['id']}"
    r = await api.request("PATCH", path, support, json={"status": "resolved"})
    closed = r.json()["timeClosed"]
    assert closed is not None
    r = await api.request("PATCH", path, support, json={"priority": "low"})
    assert r.json()["timeClosed"] == closed, "a later edit must not move the closing time"
    r = await api.request("PATCH", path, support, json={"status": "in_progress"})
    assert r.json()["timeClosed"] is None
    r = await api.request("PATCH", path, support, json={"status": "done"})
    assert r.status_code == 400
    assert r.json()["message"] == [
        "status must be one of the following values: to_do, in_progress, resolved, cancelled"
    ]
    assert (await api.request("GET", f"/agency/issues?eventId={event['id']}", owner)).json()[0][
        "id"
    ] == issue["id"]
    assert (await api.request("DELETE", path, support)).status_code == 200


async def test_issue_on_another_agencys_event_is_refused(api: Api) -> None:
    _a, _o, owner = await api.register_agency()
    _b, _o2, other = await api.register_agency()
    foreign = await api.add_event(other)
    body = {"name": "X", "description": "Y", "priority": "low", "eventId": foreign["id"]}
    assert (await api.request("POST", "/agency/issues", owner, json=body)).status_code == 404


async def test_comments_only_author_may_edit_or_delete(api: Api) -> None:
    _a, _o, owner = await api.register_agency()
    _sid, support = await api.add_user(owner, 4)
    event = await api.add_event(owner)
    issue = (
        await api.request(
            "POST",
            "/agency/issues",
            owner,
            json={"name": "N", "description": "D", "priority": "medium", "eventId": event["id"]},
        )
    ).json()
    first = (
        await api.request(
            "POST", "/agency/comments", support, json={"content": "first", "issueId": issue["id"]}
        )
    ).json()
    second = (
        await api.request(
            "POST", "/agency/comments", owner, json={"content": "second", "issueId": issue["id"]}
        )
    ).json()
    listed = (await api.request("GET", f"/agency/comments?issueId={issue['id']}", owner)).json()
    assert [c["id"] for c in listed] == [second["id"], first["id"]], "newest first"
    r = await api.request(
        "PATCH", f"/agency/comments/{first['id']}", owner, json={"content": "hijack"}
    )
    assert r.status_code == 401
    assert r.json()["message"] == "Only the author can update his comment"
    r = await api.request("DELETE", f"/agency/comments/{first['id']}", owner)
    assert r.status_code == 401
    assert r.json()["message"] == "Only the author can delete his comment"
    r = await api.request(
        "PATCH", f"/agency/comments/{first['id']}", support, json={"content": "edited"}
    )
    assert r.json()["content"] == "edited"
    assert (
        await api.request("DELETE", f"/agency/comments/{first['id']}", support)
    ).status_code == 200


async def test_every_change_writes_a_changelog_without_password(api: Api) -> None:
    agency_id, _o, owner = await api.register_agency()
    user_id, _t = await api.add_user(owner, 3)
    event = await api.add_event(owner)
    await api.request("PATCH", f"/agency/events/{event['id']}", owner, json={"address": "Moved"})
    await api.request("DELETE", f"/agency/events/{event['id']}", owner)
    logs = (await api.request("GET", "/agency/changelogs", owner)).json()
    entries = [(c["entityClass"], c["type"], c["entityId"]) for c in logs]
    assert ("Agency", "insert", agency_id) in entries
    assert ("User", "insert", user_id) in entries
    assert [e for e in entries if e[0] == "Event"] == [
        ("Event", "insert", event["id"]),
        ("Event", "update", event["id"]),
        ("Event", "delete", event["id"]),
    ]
    for c in logs:
        assert c["agencyId"] == agency_id
        if c["type"] == "delete":
            assert c["valueAfter"] is None
        else:
            assert isinstance(c["valueAfter"], str)
            value = json.loads(c["valueAfter"])
            assert "password" not in value and value["id"] == c["entityId"]
    assert "argon2" not in json.dumps(logs)
    one = (await api.request("GET", f"/agency/changelogs/{logs[0]['id']}", owner)).json()
    assert one == logs[0]
    filtered = (await api.request("GET", f"/agency/changelogs?userId={user_id}", owner)).json()
    assert filtered == []


async def test_admin_changelogs_filters(api: Api) -> None:
    agency_id, _o, owner = await api.register_agency()
    await api.add_event(owner)
    root = await api.superadmin()
    all_logs = (await api.request("GET", "/admin/changelogs", root)).json()
    by_agency = (await api.request("GET", f"/admin/changelogs?agencyId={agency_id}", root)).json()
    assert by_agency and all(c["agencyId"] == agency_id for c in by_agency)
    assert len(all_logs) >= len(by_agency)
    r = await api.request("GET", "/admin/changelogs/999999", root)
    assert r.status_code == 404 and r.json()["message"] == "Changelog with id 999999 not found"


async def test_internal_events_search(api: Api) -> None:
    _a, _o, owner = await api.register_agency()
    await api.register_agency(approved=False)
    a = await api.add_event(owner, name="Jazz on the River", timeStart="2026-07-01T10:00:00Z")
    b = await api.add_event(
        owner,
        description="100% rock",
        timeStart="2026-08-01T10:00:00Z",
        timeEnd="2026-08-02T10:00:00Z",
    )
    key = {"Authorization": "Bearer organizer-api-key-for-tests"}

    async def ids(query: str) -> list[int]:
        r = await api.request("GET", "/api/events" + query, headers=dict(key))
        assert r.status_code == 200, r.text
        return [e["id"] for e in r.json()]

    assert await ids("") == [a["id"], b["id"]]
    assert await ids("?query=jazz") == [a["id"]]
    assert await ids("?query=100%25") == [b["id"]]
    assert await ids("?query=0_r") == []
    assert await ids("?from=2026-07-15T00:00:00Z") == [b["id"]]
    assert await ids("?to=2026-07-15T00:00:00%2B00:00") == [a["id"]]
    r = await api.request("GET", f"/api/events/{a['id']}", headers=dict(key))
    assert r.json()["name"] == "Jazz on the River"
    r = await api.request("GET", "/api/events?query=", headers=dict(key))
    assert r.status_code == 400


async def test_agency_and_event_changes_reach_the_bus(api: Api) -> None:
    """Other components build read models from these (the participant's event search)."""
    from aidpost.core.bus import Subscription

    seen: list[tuple[str, dict[str, Any]]] = []

    async def collect(event: Any) -> None:
        seen.append((event.type, event.data))

    agency_id, _o, owner = await api.register_agency()
    event = await api.add_event(owner)
    await api.request("PATCH", f"/agency/events/{event['id']}", owner, json={"name": "Renamed"})
    await api.request("DELETE", f"/agency/events/{event['id']}", owner)
    await api.app.state.organizer_relay.relay_once()
    sub = Subscription(api.app.state.runtime.bus, "organizer.changes", "test-reader", collect)
    await sub.run_once(block_ms=10)
    mine = [(t, d) for t, d in seen if d["id"] in (agency_id, event["id"])]
    agency_events = [d for t, d in mine if t == "organizer.agency.changed.v1"]
    event_events = [d for t, d in mine if t == "organizer.event.changed.v1"]
    assert [d["agency"]["approved"] for d in agency_events] == [False, True]
    assert [(d["deleted"], d["event"] and d["event"]["name"]) for d in event_events] == [
        (False, event["name"]),
        (False, "Renamed"),
        (True, None),
    ]
