"""Component status from checks, automatic incidents, maintenance on time, subscribers,
and uptime through the service (fake clock, SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import pytest

from aidpost.core.errors import BadRequest, NotFound
from aidpost.status.config import parse
from aidpost.status.service import Affected
from tests.status.conftest import CONFIG, T0, StatusWorld


async def test_down_only_after_the_failure_threshold_and_up_at_once(world: StatusWorld) -> None:
    world.set("api", ok=False)
    await world.run(1)
    assert await world.status("api") == "operational"  # one failure is not an outage
    await world.run(1)
    assert await world.status("api") == "major_outage"
    world.set("api")
    await world.run(1)
    assert await world.status("api") == "operational"
    changes = await world.published("status.component.changed.v1")
    assert [(c["old_status"], c["new_status"]) for c in changes] == [
        ("operational", "major_outage"),
        ("major_outage", "operational"),
    ]


async def test_slow_or_flagged_checks_mean_degraded(world: StatusWorld) -> None:
    world.set("chat", degraded=True)
    await world.run(1)
    assert await world.status("chat") == "degraded_performance"


async def test_checks_run_at_their_interval(world: StatusWorld) -> None:
    await world.run(10, step=10)  # 60 ticks of 10 s; the interval is 60 s
    results = await world.service.results("api", 100)
    assert len(results) == 10


async def test_a_component_down_for_n_minutes_opens_an_incident_and_resolves_it(
    world: StatusWorld,
) -> None:
    await _subscriber(world, "ops@example.org", None)
    world.set("api", ok=False)
    await world.run(5)  # down from the 2nd check (minute 2): not yet 5 minutes
    assert await world.service.incidents(kind="incident") == []
    await world.run(3)
    [(incident, updates, comps)] = await world.service.incidents(kind="incident")
    assert (incident.status, incident.impact, incident.autoFor) == (
        "investigating",
        "major",
        "api",
    )
    assert [(c.componentId, c.status) for c in comps] == [("api", "major_outage")]
    await world.run(10)  # still down: still one incident, one update
    assert len(await world.service.incidents(kind="incident")) == 1
    world.set("api")
    await world.run(1)
    [(incident, updates, _)] = await world.service.incidents(kind="incident")
    assert incident.status == "resolved" and incident.resolvedAt == world.clock.now()
    assert [u.status for u in updates] == ["resolved", "investigating"]
    assert await world.status("api") == "operational"
    notes = await world.published("status.notification.v1")
    assert [(n["email"], n["update"]["status"]) for n in notes] == [
        ("ops@example.org", "investigating"),
        ("ops@example.org", "resolved"),
    ]
    assert notes[0]["update"]["components"] == [
        {"code": "api", "name": "API", "old_status": "major_outage", "new_status": "major_outage"}
    ]


async def test_maintenance_starts_and_ends_on_time(world: StatusWorld) -> None:
    start, end = T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=2)
    m = await world.service.schedule_maintenance(
        name="Database upgrade",
        body="PostgreSQL 17.",
        scheduled_for=start,
        scheduled_until=end,
        components=["api"],
        actor="staff:1",
    )
    assert m.status == "scheduled" and await world.status("api") == "operational"
    await world.run(59)
    assert (await world.service.incident(m.id))[0].status == "scheduled"
    await world.run(1)
    assert (await world.service.incident(m.id))[0].status == "in_progress"
    assert await world.status("api") == "under_maintenance"
    world.set("api", ok=False)  # the upgrade takes the API down: expected
    await world.run(59)
    assert await world.status("api") == "under_maintenance"
    assert await world.service.incidents(kind="incident") == []  # no automatic incident
    world.set("api")
    await world.run(1)
    inc, updates, _ = await world.service.incident(m.id)
    assert inc.status == "completed"
    assert [u.status for u in updates] == ["completed", "in_progress", "scheduled"]
    await world.run(1)
    assert await world.status("api") == "operational"
    # The hour in maintenance is left out of uptime; the hour before it was up.
    t = await world.service.tally("api", T0, end)
    assert t.maintenance == pytest.approx(3600) and t.down == 0 and t.uptime == 100.0


async def test_a_window_already_begun_starts_at_once(world: StatusWorld) -> None:
    m = await world.service.schedule_maintenance(
        name="Now",
        body="Right away.",
        scheduled_for=T0 - dt.timedelta(minutes=5),
        scheduled_until=T0 + dt.timedelta(minutes=5),
        components=["chat"],
        actor="staff:1",
    )
    assert (await world.service.incident(m.id))[0].status == "in_progress"
    assert await world.status("chat") == "under_maintenance"


async def test_maintenance_window_must_end_after_it_starts(world: StatusWorld) -> None:
    with pytest.raises(BadRequest):
        await world.service.schedule_maintenance(
            name="x", body="y", scheduled_for=T0, scheduled_until=T0, components=[], actor="a"
        )
    with pytest.raises(BadRequest):
        await world.service.schedule_maintenance(
            name="x",
            body="y",
            scheduled_for=T0,
            scheduled_until=T0 + dt.timedelta(hours=1),
            components=["nope"],
            actor="a",
        )


async def test_an_incident_sets_and_restores_component_status(world: StatusWorld) -> None:
    inc = await world.service.open_incident(
        name="Phone line noisy",
        status="identified",
        impact="minor",
        body="The provider is on it.",
        affected=[Affected("phones", "partial_outage")],
        actor="staff:1",
    )
    assert await world.status("phones") == "partial_outage"
    await world.service.update_incident(
        inc.id,
        status="resolved",
        body="Fixed.",
        affected=None,
        impact=None,
        actor="staff:1",
    )
    assert await world.status("phones") == "operational"
    with pytest.raises(BadRequest):
        await world.service.update_incident(
            inc.id, status="in_progress", body="x", affected=None, impact=None, actor="a"
        )
    with pytest.raises(NotFound):
        await world.service.update_incident(
            "nope", status=None, body="x", affected=None, impact=None, actor="a"
        )


async def test_manual_status_wins_until_cleared(world: StatusWorld) -> None:
    await world.service.change_component("api", {"manualStatus": "partial_outage"})
    await world.run(1)
    assert await world.status("api") == "partial_outage"
    await world.service.change_component("api", {"manualStatus": None})
    assert await world.status("api") == "operational"
    with pytest.raises(BadRequest):  # configured components change in configuration only
        await world.service.change_component("api", {"name": "Renamed"})


async def _subscriber(world: StatusWorld, email: str, components: list[str] | None) -> str:
    await world.service.subscribe(email, components)
    confirm = (await world.published("status.subscriber.confirm.v1"))[-1]
    assert confirm["email"] == email
    await world.service.confirm(confirm["confirmUrl"].rsplit("/", 1)[1])
    return str(confirm["subscriber"])


async def test_double_opt_in_component_choice_and_unsubscribe(world: StatusWorld) -> None:
    await world.service.subscribe("late@example.org", None)  # never confirms
    await _subscriber(world, "api-only@example.org", ["api"])
    await _subscriber(world, "all@example.org", None)

    async def notify(component: str) -> list[str]:
        before = len(await world.published("status.notification.v1"))
        await world.service.open_incident(
            name=f"{component} trouble",
            status="investigating",
            impact="minor",
            body="Looking.",
            affected=[Affected(component, "degraded_performance")],
            actor="staff:1",
        )
        return sorted(
            n["email"] for n in (await world.published("status.notification.v1"))[before:]
        )

    assert await notify("api") == ["all@example.org", "api-only@example.org"]
    assert await notify("chat") == ["all@example.org"]

    note = (await world.published("status.notification.v1"))[-1]
    token = note["unsubscribeUrl"].rsplit("/", 1)[1]
    assert await world.service.unsubscribe(token) is True
    assert await world.service.unsubscribe(token) is False  # once
    assert await notify("chat") == []


async def test_a_confirmation_link_works_once_and_a_new_one_replaces_it(
    world: StatusWorld,
) -> None:
    await world.service.subscribe("a@example.org", ["api"])
    first = (await world.published("status.subscriber.confirm.v1"))[-1]["confirmUrl"].rsplit(
        "/", 1
    )[1]
    world.clock.advance(299)
    await world.service.subscribe("a@example.org", ["api"])  # no flood of confirmations
    assert len(await world.published("status.subscriber.confirm.v1")) == 1
    world.clock.advance(1)
    await world.service.subscribe("A@example.org", ["chat"])  # same address, new choice
    second = (await world.published("status.subscriber.confirm.v1"))[-1]["confirmUrl"].rsplit(
        "/", 1
    )[1]
    with pytest.raises(NotFound):
        await world.service.confirm(first)
    sub = await world.service.confirm(second)
    assert sub.components == '["chat"]'
    with pytest.raises(NotFound):
        await world.service.confirm(second)
    assert len(await world.service.subscribers()) == 1
    with pytest.raises(BadRequest):
        await world.service.subscribe("not an address", None)
    with pytest.raises(BadRequest):
        await world.service.subscribe("b@example.org", ["nope"])


async def test_uptime_over_days_with_a_gap(world: StatusWorld) -> None:
    world.clock.set(T0.replace(hour=0))
    await world.service.add_component(
        {"id": "batch", "name": "Batch", "kind": "http", "target": "http://batch.test/",
         "intervalSeconds": 600, "onlyShowIfDegraded": False, "createdAt": world.clock.now()}
    )  # fmt: skip
    await world.run(24 * 60, step=600)  # day 1: up all day
    world.set("batch", ok=False)
    await world.run(6 * 60, step=600)  # day 2: 6 hours down ...
    world.clock.advance(6 * 3600)  # ... 6 hours the prober did not run ...
    world.set("batch")
    await world.run(12 * 60, step=600)  # ... 12 hours up
    world.clock.advance(1)
    days = await world.service.days("batch", 4)
    by_day = {d.isoformat(): t for d, t in days}
    d1, d2 = by_day["2026-06-01"], by_day["2026-06-02"]
    assert d1.uptime == pytest.approx(100.0) and d1.down == 0
    assert d2.down == pytest.approx(6 * 3600, abs=600)
    assert d2.nodata == pytest.approx(6 * 3600, abs=1200)
    assert d2.uptime == pytest.approx(100 * 12 / 18, abs=1.0)
    uptimes = await world.service.uptimes("batch")
    assert uptimes["7d"] == pytest.approx(100 * 36 / 42, abs=0.5)
    assert by_day["2026-05-31"].uptime is None  # before the component existed: no data
    again = await world.service.days("batch", 4)  # past days are kept, and equal
    assert [t for _d, t in again][:3] == [t for _d, t in days][:3]


async def test_one_prober_at_a_time(world: StatusWorld) -> None:
    other = world.make_prober("p2")
    world.clock.advance(60)
    assert await world.prober.tick() == 3 - 1  # two checked components, one manual
    world.clock.advance(60)
    assert await other.tick() == 0 and not other.leader
    await world.prober.stop()  # gives the lease up
    assert await other.tick() == 2


async def test_configuration_is_synchronised_and_operators_components_stay(
    world: StatusWorld,
) -> None:
    await world.service.add_component(
        {"id": "website", "name": "Website", "kind": "manual", "onlyShowIfDegraded": False}
    )
    smaller = {
        "groups": [{**CONFIG["groups"][0], "components": CONFIG["groups"][0]["components"][:1]}]
    }
    await world.service.sync(parse(smaller))
    ids = [c.id for c in await world.service.components()]
    assert sorted(ids) == ["api", "website"]
    assert [g.id for g in await world.service.groups()] == ["services"]


async def test_an_automatic_incident_resolved_by_hand_stays_resolved(world: StatusWorld) -> None:
    world.set("api", ok=False)
    await world.run(8)
    [(incident, _u, _c)] = await world.service.incidents(kind="incident")
    await world.service.update_incident(
        incident.id, status="resolved", body="Known; we take it from here.",
        affected=None, impact=None, actor="staff:1",
    )  # fmt: skip
    await world.run(10)  # still down: no second automatic incident in this run of failures
    assert len(await world.service.incidents(kind="incident")) == 1
    world.set("api")
    await world.run(1)
    world.set("api", ok=False)
    await world.run(8)  # a new run of failures: a new incident
    assert len(await world.service.incidents(kind="incident")) == 2


async def test_a_maintenance_that_never_began_leaves_uptime_alone(world: StatusWorld) -> None:
    world.set("api", ok=False)
    m = await world.service.schedule_maintenance(
        name="Later", body="b", scheduled_for=T0 + dt.timedelta(days=2),
        scheduled_until=T0 + dt.timedelta(days=2, hours=1), components=["api"], actor="a",
    )  # fmt: skip
    await world.run(30)
    await world.service.update_incident(
        m.id, status="completed", body="Done early?", affected=None, impact=None, actor="a"
    )
    t = await world.service.tally("api", T0, world.clock.now())
    assert t.maintenance == 0 and t.down > 0


async def test_a_maintenance_cancelled_while_in_progress_keeps_its_window(
    world: StatusWorld,
) -> None:
    m = await world.service.schedule_maintenance(
        name="Now", body="b", scheduled_for=T0, scheduled_until=T0 + dt.timedelta(hours=1),
        components=["api"], actor="a",
    )  # fmt: skip
    world.set("api", ok=False)
    await world.run(20)
    await world.service.update_incident(
        m.id, status="cancelled", body="Stopped.", affected=None, impact=None, actor="a"
    )
    t = await world.service.tally("api", T0, T0 + dt.timedelta(minutes=20))
    assert t.maintenance == pytest.approx(20 * 60) and t.down == 0


async def test_a_reopened_incident_is_open_again(world: StatusWorld) -> None:
    inc = await world.service.open_incident(
        name="x", status="investigating", impact="minor", body="b",
        affected=[Affected("phones", "major_outage")], actor="a",
    )  # fmt: skip
    for status in ("resolved", "identified"):
        await world.service.update_incident(
            inc.id, status=status, body=status, affected=None, impact=None, actor="a"
        )
    found, _u, _c = await world.service.incident(inc.id)
    assert found.resolvedAt is None and await world.status("phones") == "major_outage"


async def test_an_incident_can_put_a_component_under_maintenance(world: StatusWorld) -> None:
    await world.service.open_incident(
        name="Works", status="identified", impact="none", body="b",
        affected=[Affected("phones", "under_maintenance")], actor="a",
    )  # fmt: skip
    assert await world.status("phones") == "under_maintenance"


async def test_the_cache_never_keeps_what_a_change_overtook(world: StatusWorld) -> None:
    calls = 0

    async def slow() -> int:
        nonlocal calls
        calls += 1
        await world.service.open_incident(
            name="meanwhile", status="investigating", impact="minor", body="b",
            affected=[], actor="a",
        )  # fmt: skip
        return calls

    assert await world.service.cached("k", slow) == 1
    assert await world.service.cached("k", slow) == 2  # the first was not kept

    async def plain() -> int:
        return 42

    assert await world.service.cached("p", plain) == 42
    assert await world.service.cached("p", slow) == 42  # kept now


async def test_two_subscriptions_of_one_address_at_once(world: StatusWorld) -> None:
    import asyncio

    await asyncio.gather(
        *(world.service.subscribe(a, None) for a in ("x@example.org", "X@example.org") * 3)
    )
    assert len(await world.service.subscribers()) == 1
