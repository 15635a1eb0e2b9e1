"""The status page's emails through the mailer and a real SMTP server: the double opt-in
link, and one notification per subscriber and update with a one-click unsubscribe."""

from __future__ import annotations

from typing import Any

from tests.mailer.world import World, context


def notification(subscriber: str, update: str, status: str = "investigating") -> dict[str, Any]:
    return {
        "kind": "incident",
        "incident": {"id": "i1", "name": "Slow sign-in", "status": status, "impact": "minor",
                     "url": "https://status.test/statuspage/incidents/i1",
                     "scheduledFor": None, "scheduledUntil": None},
        "update": {"id": update, "status": status, "body": "Adding capacity.",
                   "createdAt": "2026-06-01T12:00:00+00:00",
                   "components": [{"code": "sign-in", "name": "Sign-in",
                                   "old_status": "operational",
                                   "new_status": "degraded_performance"}]},
        "subscriber": subscriber,
        "email": f"{subscriber}@example.org",
        "unsubscribeUrl": f"https://status.test/statuspage/unsubscribe/tok-{subscriber}",
    }  # fmt: skip


async def test_confirmation_link_is_sent_and_then_forgotten(world: World) -> None:
    link = "https://status.test/statuspage/confirm/SECRET-TOKEN"
    await world.publish("status.subscriber.confirm.v1", {
        "subscriber": "s1", "email": "new@example.org", "components": ["sign-in"],
        "confirmUrl": link, "token": "SECRET-TOKEN"})  # fmt: skip
    assert await world.service().run_once() == 1
    [received] = world.smtp.received
    assert received.recipients == ["new@example.org"]
    text = received.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "https://status.test/statuspage/confirm/SECRET-TOKEN" in text
    assert "sign-in" in text
    [email] = await world.emails("status-subscription-confirm")
    assert "SECRET-TOKEN" not in email.context  # a secret: dropped once sent
    assert email.state == "succeeded"


async def test_one_notification_per_subscriber_and_update_with_one_click_unsubscribe(
    world: World,
) -> None:
    for sub in ("a", "b"):
        await world.publish("status.notification.v1", notification(sub, "u1"), f"ev-{sub}")
    await world.publish("status.notification.v1", notification("a", "u1"), "ev-a")  # redelivered
    await world.publish("status.notification.v1", notification("a", "u1"), "ev-a2")  # republished
    await world.publish("status.notification.v1", notification("a", "u2", "resolved"))
    assert await world.service().run_once() == 3
    got = sorted((r.recipients[0], str(r.message["Subject"])) for r in world.smtp.received)
    assert got == [
        ("a@example.org", "[Incident] Slow sign-in: investigating"),
        ("a@example.org", "[Incident] Slow sign-in: resolved"),
        ("b@example.org", "[Incident] Slow sign-in: investigating"),
    ]
    message = world.smtp.received[0].message
    who = world.smtp.received[0].recipients[0].split("@")[0]
    assert message["List-Unsubscribe"] == f"<https://status.test/statuspage/unsubscribe/tok-{who}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Sign-in: degraded performance" in text and "Adding capacity." in text
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert 'href="https://status.test/statuspage/unsubscribe/' in html
    emails = await world.emails("status-notification")
    assert {context(e)["unsubscribe_url"] for e in emails} == {
        "https://status.test/statuspage/unsubscribe/tok-a",
        "https://status.test/statuspage/unsubscribe/tok-b",
    }
