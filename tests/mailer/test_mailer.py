"""Every shipped job end to end (trigger, timing, recipients, rendering) over real SMTP,
and the worker's guarantees: claimed once, retried with backoff, leases that lapse, refusals.
Each test runs on SQLite and on PostgreSQL with a fake clock."""

from __future__ import annotations

import asyncio
import datetime as dt

from tests.mailer.world import T0, World, iso


async def test_agency_registration_approval_and_block(world: World) -> None:
    await world.staff()
    await world.agency(1, "insert", approved=False, name="Red <Cross>")
    assert await world.service().run_once() == 2
    assert sorted(world.sent_to()) == [
        ("New agency waiting for approval: Red <Cross>",
         ["admin@aidpost.example", "root@aidpost.example"]),
        ("Your agency Red <Cross> is registered", ["owner@rc.example"]),
    ]  # fmt: skip
    admin_mail = next(r.message for r in world.smtp.received if "approval" in r.message["Subject"])
    html = admin_mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Red &lt;Cross&gt;" in html  # values are escaped in the HTML part
    assert "Red <Cross>" in admin_mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert admin_mail["Auto-Submitted"] == "auto-generated"

    world.smtp.received.clear()
    await world.agency(1, "update", approved=False)  # an edit, not an approval
    await world.agency(1, "update", approved=True, name="Red Cross")
    await world.agency(1, "update", approved=True, name="Red Cross")  # still approved
    await world.agency(1, "update", approved=False, name="Red Cross")
    assert await world.service().run_once() == 2
    assert world.sent_to() == [
        ("Your agency Red Cross is approved", ["owner@rc.example"]),
        ("Your agency Red Cross is blocked", ["owner@rc.example"]),
    ]


async def test_a_redelivered_event_schedules_nothing_twice(world: World) -> None:
    await world.staff()
    agency = {"id": 1, "name": "A", "address": "B", "website": "https://a.example",
              "approved": False}  # fmt: skip
    data = {"id": 1, "agency": agency, "deleted": False, "change": "insert"}
    await world.publish("organizer.agency.changed.v1", data, event_id="same")
    await world.publish("organizer.agency.changed.v1", data, event_id="same")
    assert len(await world.emails()) == 2  # one per job, not four


async def test_event_reminder_follows_the_start_time_and_the_event(world: World) -> None:
    await world.staff()
    start = T0 + dt.timedelta(days=3)
    await world.event(5, "insert", start)
    [email] = await world.emails("event-starting-soon")
    assert email.sendAt == start - dt.timedelta(hours=24) and email.expiresAt == start
    assert await world.service().run_once() == 0  # not due

    later = start + dt.timedelta(days=1)
    await world.event(5, "update", later)  # moved: the same email moves with it
    [email] = await world.emails("event-starting-soon")
    assert email.sendAt == later - dt.timedelta(hours=24)
    world.clock.set(later - dt.timedelta(hours=24, seconds=-1))
    assert await world.service().run_once() == 1
    assert world.sent_to() == [
        ("City Marathon starts in 24 hours",
         ["manager@rc.example", "owner@rc.example", "support@rc.example"]),
    ]  # fmt: skip
    text = world.smtp.received[0].message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert iso(later) in text

    await world.event(6, "insert", world.clock.now() + dt.timedelta(days=2))
    await world.event(6, "delete", None)
    [cancelled] = [e for e in await world.emails("event-starting-soon") if e.sourceKey == "event:6"]
    assert cancelled.state == "cancelled"
    assert (await world.log(cancelled.id))[-1][:3] == (
        "scheduled", "cancelled", "job:event-starting-soon",
    )  # fmt: skip

    # Created 2 hours before it starts: reminded now. Already begun: not at all.
    await world.event(7, "insert", world.clock.now() + dt.timedelta(hours=2))
    await world.event(8, "insert", world.clock.now() - dt.timedelta(hours=1))
    keys = {e.sourceKey: e.state for e in await world.emails("event-starting-soon")}
    assert keys.get("event:7") == "scheduled" and "event:8" not in keys
    assert await world.service().run_once() == 1


async def test_waiting_help_request_escalates_unless_taken_or_cancelled(world: World) -> None:
    await world.staff()
    await world.event(5, "insert", T0 + dt.timedelta(hours=1))

    async def request(rid: int) -> None:
        await world.publish("help.requested.v1", {
            "requestId": rid, "participantId": 70, "eventId": 5, "agencyId": 1,
            "problemType": "medical", "description": "chest pain", "lat": 52.1, "lng": 21.0,
            "requestedAt": iso(world.clock.now())})  # fmt: skip

    await request(1)
    await request(2)
    await request(3)
    await world.publish("chat.started.v1", {"requestId": 1, "chatId": "c1", "agencyId": 1,
                        "eventId": 5, "participantId": 70, "organizerId": 12})  # fmt: skip
    await world.publish("help.cancelled.v1", {"requestId": 2, "agencyId": 1, "eventId": 5})
    world.clock.advance(4 * 60)
    assert await world.service().run_once() == 1  # the event reminder only
    world.smtp.received.clear()
    world.clock.advance(61)
    assert await world.service().run_once() == 1
    assert world.sent_to() == [
        ("Help request waiting for 5 minutes at City Marathon",
         ["manager@rc.example", "owner@rc.example"]),
    ]  # fmt: skip
    body = world.smtp.received[0].message.get_content()
    assert "chest pain" in body and "52.1, 21.0" in body
    states = {e.sourceKey: e.state for e in await world.emails("help-request-waiting")}
    assert states == {"request:1": "cancelled", "request:2": "cancelled", "request:3": "succeeded"}


async def test_two_workers_racing_send_each_email_once(world: World) -> None:
    await world.staff()
    for aid in range(100, 130):
        await world.agency(aid, "insert", approved=False, name=f"Agency {aid}")
    one, two = world.service("w1"), world.service("w2")
    handled = await asyncio.gather(one.run_once(), two.run_once(), one.run_once())
    assert sum(handled) == 60  # 30 to admins, 30 to owners nobody knows (failed: no recipient)
    ids = [str(r.message["Message-ID"]) for r in world.smtp.received]
    assert len(ids) == 30 and len(set(ids)) == 30
    states = [e.state for e in await world.emails("agency-registered-admins")]
    assert states == ["succeeded"] * 30
    owners = await world.emails("agency-registered-owner")
    assert {(e.state, e.lastError) for e in owners} == {("failed", "no recipient")}


async def test_smtp_down_retries_with_backoff_until_it_is_back(world: World) -> None:
    await world.staff()
    world.smtp.stop()
    await world.agency(1, "insert", approved=False)
    svc = world.service()
    await svc.run_once()
    [email] = await world.emails("agency-registered-admins")
    assert (email.state, email.attempts) == ("scheduled", 1)
    assert email.sendAt == T0 + dt.timedelta(seconds=60)
    world.clock.advance(60)
    await svc.run_once()
    [email] = await world.emails("agency-registered-admins")
    assert (email.state, email.attempts) == ("scheduled", 2)
    assert email.sendAt == T0 + dt.timedelta(seconds=60 + 120)  # doubled
    assert "retry at" in (email.lastError or "")
    world.smtp.start()
    world.clock.advance(119)
    assert await svc.run_once() == 0  # not yet
    world.clock.advance(1)
    assert await svc.run_once() == 2
    [email] = await world.emails("agency-registered-admins")
    assert (email.state, email.attempts) == ("succeeded", 3)
    moves = [(f, t) for f, t, _a, _n in await world.log(email.id)]
    assert moves == [
        (None, "scheduled"),
        ("scheduled", "locked"), ("locked", "scheduled"),
        ("scheduled", "locked"), ("locked", "scheduled"),
        ("scheduled", "locked"), ("locked", "succeeded"),
    ]  # fmt: skip


async def test_attempts_run_out_and_permanent_refusals_fail_at_once(world: World) -> None:
    await world.staff()
    world.smtp.handler.refuse = "451 try later"
    await world.agency(1, "insert", approved=False)
    svc = world.service()
    for _ in range(8):
        await svc.run_once()
        world.clock.advance(7 * 3600)
    admin = (await world.emails("agency-registered-admins"))[0]
    assert (admin.state, admin.attempts) == ("failed", 8)
    assert "gave up after 8 attempts" in (admin.lastError or "")

    world.smtp.handler.refuse = "550 mailbox unavailable"
    await world.agency(2, "insert", approved=False)
    await svc.run_once()
    [admin] = [
        e for e in await world.emails("agency-registered-admins") if e.sourceKey == "agency:2"
    ]
    assert (admin.state, admin.attempts) == ("failed", 1) and "550" in (admin.lastError or "")


async def test_a_worker_that_dies_holding_a_lease_is_taken_over_once(world: World) -> None:
    await world.staff()
    await world.agency(1, "insert", approved=False)
    doomed, survivor = world.service("doomed"), world.service("survivor")
    claimed = await doomed.claim()
    assert len(claimed) == 2  # ...and the worker dies here, holding both
    assert await survivor.run_once() == 0  # the lease holds
    world.clock.advance(61)
    assert await survivor.run_once() == 2
    assert len(world.smtp.received) == 2
    email = (await world.emails("agency-registered-admins"))[0]
    assert email.state == "succeeded" and email.attempts == 2
    log = await world.log(email.id)
    assert log[1][:3] == ("scheduled", "locked", "worker:doomed")
    assert log[2][:3] == ("locked", "locked", "worker:survivor")
    assert "the lease of worker doomed had lapsed" in log[2][3]


async def test_header_injection_and_bad_templates_are_refused(world: World) -> None:
    await world.staff()
    world.jobs = {**world.jobs}
    from aidpost.mailer.jobs import parse

    world.jobs["to-address"] = parse({
        "name": "to-address", "trigger": {"event": "help.requested.v1"},
        "source": "r:{data.requestId}", "to": [{"address": "data.contact"}],
        "template": "agency-approved", "context": {"agency": "data.agency"}}, "test")  # fmt: skip
    await world.publish("help.requested.v1", {"requestId": 1, "agencyId": 1, "eventId": 1,
        "participantId": 1, "requestedAt": iso(T0),
        "contact": "victim@example.com\r\nBcc: everyone@example.com",
        "agency": {"name": "X\r\nBcc: everyone@example.com"}})  # fmt: skip
    await world.publish("help.requested.v1", {"requestId": 2, "agencyId": 1, "eventId": 1,
        "participantId": 1, "requestedAt": iso(T0), "contact": "ok@example.com",
        "agency": {"name": "Evil\r\nBcc: everyone@example.com"}})  # fmt: skip
    await world.publish("help.requested.v1", {"requestId": 3, "agencyId": 1, "eventId": 1,
        "participantId": 1, "requestedAt": iso(T0), "contact": "ok@example.com"})  # fmt: skip
    await world.service().run_once()
    by_key = {e.sourceKey: e for e in await world.emails("to-address")}
    assert by_key["r:1"].state == "failed"
    assert "refused recipient" in (by_key["r:1"].lastError or "")
    # a line break in a value cannot make a header: the subject is one line
    assert by_key["r:2"].state == "succeeded"
    [received] = world.smtp.received
    assert received.recipients == ["ok@example.com"]
    assert received.message["Subject"] == "Your agency Evil Bcc: everyone@example.com is approved"
    assert received.message["Bcc"] is None
    # a template that cannot render with its context fails with the reason
    assert by_key["r:3"].state == "failed"
    assert "cannot render" in (by_key["r:3"].lastError or "")


async def test_participant_lookup_trouble_is_retried(world: World) -> None:
    from aidpost.core.directory import DirectoryUnavailable
    from aidpost.mailer.jobs import parse

    world.jobs = {**world.jobs, "transcript": parse({
        "name": "transcript", "trigger": {"event": "chat.closed.v1"},
        "source": "chat:{data.chatId}", "to": [{"participant": "data.participantId"}],
        "template": "agency-approved",
        "context": {"agency": {"current": "agency", "id": "data.agencyId"}}}, "test")}  # fmt: skip
    await world.staff()
    await world.agency(1, "insert", approved=True)
    await world.publish("chat.closed.v1", {"requestId": 1, "chatId": "c1", "participantId": 70,
                        "eventId": 5, "agencyId": 1})  # fmt: skip
    svc = world.service()

    async def down(_ids: list[int]) -> dict[str, object]:
        raise DirectoryUnavailable("participant component unreachable")

    svc.directory._lookup = down  # type: ignore[attr-defined]
    await svc.run_once()
    [email] = await world.emails("transcript")
    assert email.state == "scheduled" and "unreachable" in (email.lastError or "")
    world.participants[70] = {"id": 70, "email": "runner@example.com"}
    world.clock.advance(60)
    await world.service().run_once()
    [email] = await world.emails("transcript")
    assert email.state == "succeeded" and email.sentTo == '["runner@example.com"]'


async def test_a_lapsed_lease_mid_batch_sends_nothing_twice(world: World) -> None:
    """Worker A claims a batch and is slow; its lease lapses, B takes and sends the emails;
    A, coming to them late, sends nothing and changes nothing."""
    await world.staff()
    await world.agency(1, "insert", approved=False)
    slow, quick = world.service("slow"), world.service("quick")
    claimed = await slow.claim()
    world.clock.advance(61)
    assert await quick.run_once() == 2
    for email in claimed:
        assert await slow.deliver(email) == "locked"
    assert len(world.smtp.received) == 2
    assert {e.state for e in await world.emails()} == {"succeeded"}


async def test_a_template_that_raises_fails_its_email_only(world: World) -> None:
    await world.staff()
    async with world.db.transaction() as session:
        from aidpost.mailer.models import Template

        row = await session.get(Template, "agency-registered-owner")
        assert row is not None
        row.text = "{{ 1 / 0 }}"
    await world.agency(1, "insert", approved=False)
    assert await world.service().run_once() == 2
    owner = (await world.emails("agency-registered-owner"))[0]
    assert owner.state == "failed" and "ZeroDivisionError" in (owner.lastError or "")
    assert [r.recipients for r in world.smtp.received] == [
        ["admin@aidpost.example", "root@aidpost.example"]
    ]


async def test_secrets_never_reach_what_is_stored(world: World) -> None:
    async with world.db.transaction() as session:
        from aidpost.mailer.models import Template

        row = await session.get(Template, "password-reset")
        assert row is not None
        row.subject = "Your token is {{ token }}"  # a careless (or malicious) edit
    await world.publish("auth.password_token.v1", {"realm": "organizer", "userId": 10,
        "email": "owner@rc.example", "purpose": "reset", "token": "s3cret-t0ken",
        "expiresAt": iso(T0 + dt.timedelta(hours=2))})  # fmt: skip
    await world.service().run_once()
    [email] = await world.emails("password-reset")
    assert email.state == "succeeded"
    assert email.subject == "Your token is [hidden]"
    assert "s3cret-t0ken" not in email.context
    assert all("s3cret-t0ken" not in note for *_x, note in await world.log(email.id))
    assert world.smtp.received[0].message["Subject"] == "Your token is s3cret-t0ken"
