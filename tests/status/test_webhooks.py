"""Webhooks: one signed POST per notification to a real local receiver, retried with
backoff while it fails, only for the components a webhook follows."""

from __future__ import annotations

import json

from aidpost.status.service import Affected
from aidpost.status.webhooks import WebhookSender, sign, verify
from tests.status.conftest import StatusWorld
from tests.status.servers import http_server


async def incident(world: StatusWorld, component: str) -> None:
    await world.service.open_incident(
        name=f"{component} trouble",
        status="investigating",
        impact="major",
        body="Looking into it.",
        affected=[Affected(component, "major_outage")],
        actor="staff:1",
    )


async def test_signed_deliveries_retried_until_taken(world: StatusWorld) -> None:
    async with http_server() as receiver:
        receiver.routes["/hook"] = (500, b"busy", 0.0)
        hook = await world.service.add_webhook(receiver.url + "/hook", None)
        api_only = await world.service.add_webhook(receiver.url + "/api-only", ["api"])
        receiver.routes["/api-only"] = (204, b"", 0.0)
        sender = WebhookSender(world.db, world.clock)
        try:
            await incident(world, "chat")
            assert await sender.deliver_due() == 1  # the api-only hook is not told
            [first] = receiver.received
            assert first.path == "/hook" and first.method == "POST"
            assert verify(hook.secret, first.headers["x-aidpost-signature"], first.body)
            assert not verify("another secret", first.headers["x-aidpost-signature"], first.body)
            assert not verify(hook.secret, first.headers["x-aidpost-signature"], first.body + b" ")
            payload = json.loads(first.body)
            assert payload["type"] == "status.notification.v1"
            assert payload["incident"]["name"] == "chat trouble"
            assert payload["update"]["components"][0]["new_status"] == "major_outage"

            world.clock.advance(29)
            assert await sender.deliver_due() == 0  # backing off: 30 s
            world.clock.advance(1)
            assert await sender.deliver_due() == 1
            world.clock.advance(59)
            assert await sender.deliver_due() == 0  # then 60 s
            receiver.routes["/hook"] = (200, b"thanks", 0.0)
            world.clock.advance(1)
            assert await sender.deliver_due() == 1
            world.clock.advance(3600)
            assert await sender.deliver_due() == 0  # delivered: never again
            ids = {r.headers["x-aidpost-delivery"] for r in receiver.received}
            assert len(receiver.received) == 3 and len(ids) == 1  # one delivery, three tries
            [delivery] = await world.service.deliveries(hook.id)
            assert (delivery.state, delivery.attempts, delivery.lastError) == ("delivered", 3, None)

            await incident(world, "api")
            assert await sender.deliver_due() == 2  # both hooks follow the API
            assert sorted(r.path for r in receiver.received[3:]) == ["/api-only", "/hook"]
            assert [d.state for d in await world.service.deliveries(api_only.id)] == ["delivered"]
        finally:
            await sender.close()


async def test_a_receiver_that_never_answers_fails_after_ten_attempts(world: StatusWorld) -> None:
    hook = await world.service.add_webhook("http://127.0.0.1:9/closed", None)
    sender = WebhookSender(world.db, world.clock, timeout=1)
    try:
        await incident(world, "chat")
        for _ in range(12):
            await sender.deliver_due()
            world.clock.advance(3600)
        [delivery] = await world.service.deliveries(hook.id)
        assert (delivery.state, delivery.attempts) == ("failed", 10)
        assert delivery.lastError is not None and "ConnectError" in delivery.lastError
    finally:
        await sender.close()


def test_signature_format() -> None:
    header = sign("s3cret", 1700000000, b'{"a":1}')
    assert header.startswith("t=1700000000,v1=") and len(header.split("v1=")[1]) == 64
    assert verify("s3cret", header, b'{"a":1}')
    assert not verify("s3cret", "t=x,v1=00", b"{}") and not verify("s3cret", "garbage", b"{}")


async def test_a_webhook_that_cannot_be_sent_to_holds_back_no_other(world: StatusWorld) -> None:
    async with http_server() as receiver:
        receiver.routes["/ok"] = (200, b"", 0.0)
        await world.service.add_webhook("http://xn--ls8h-/", None)  # stored before validation
        await world.service.add_webhook(receiver.url + "/ok", None)
        sender = WebhookSender(world.db, world.clock)
        try:
            await incident(world, "chat")
            assert await sender.deliver_due() == 2
            assert [r.path for r in receiver.received] == ["/ok"]
        finally:
            await sender.close()
