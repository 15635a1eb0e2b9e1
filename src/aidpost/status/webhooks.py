"""Webhook deliveries: one POST per notification and webhook, signed, retried with backoff.

Each request carries ``X-Aidpost-Delivery`` (the delivery id: the same on every retry, so a
receiver can drop a repeat), ``X-Aidpost-Event`` and
``X-Aidpost-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the
webhook's secret>``. A receiver recomputes the HMAC over the raw body and refuses a
timestamp older than a few minutes (replays). A 2xx answer delivers; anything else is
retried after 30 s, 60 s, 120 s ... (at most 1 h) for ``MAX_ATTEMPTS`` attempts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging

import httpx
from sqlalchemy import select

from aidpost.core.clock import Clock
from aidpost.core.db import Database
from aidpost.status.models import Webhook, WebhookDelivery

log = logging.getLogger("aidpost.status.webhooks")
MAX_ATTEMPTS = 10
BASE_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 3600.0


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes) -> bool:
    """What a receiver does (used by the tests): the signature matches the body."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    if "t" not in parts or "v1" not in parts or not parts["t"].isdigit():
        return False
    expected = sign(secret, int(parts["t"]), body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts["v1"])


class WebhookSender:
    def __init__(self, db: Database, clock: Clock, *, timeout: float = 10.0) -> None:
        self.db, self.clock, self.timeout = db, clock, timeout
        self._client: httpx.AsyncClient | None = None

    async def deliver_due(self, limit: int = 50) -> int:
        now = self.clock.now()
        async with self.db.session() as session:
            rows = (
                await session.execute(
                    select(WebhookDelivery, Webhook)
                    .join(Webhook, Webhook.id == WebhookDelivery.webhookId)
                    .where(WebhookDelivery.state == "pending", WebhookDelivery.nextAt <= now)
                    .order_by(WebhookDelivery.nextAt, WebhookDelivery.id)
                    .limit(limit)
                )
            ).all()
        for delivery, hook in rows:
            error = await self._post(delivery, hook)
            await self._record(delivery.id, error)
        return len(rows)

    async def _post(self, delivery: WebhookDelivery, hook: Webhook) -> str | None:
        if self._client is None:
            self._client = httpx.AsyncClient(headers={"User-Agent": "aidpost-status-webhooks"})
        body = delivery.payload.encode()
        stamp = int(self.clock.now().timestamp())
        headers = {
            "Content-Type": "application/json",
            "X-Aidpost-Delivery": delivery.id,
            "X-Aidpost-Event": "status.notification.v1",
            "X-Aidpost-Signature": sign(hook.secret, stamp, body),
        }
        try:
            response = await self._client.post(
                hook.url, content=body, headers=headers, timeout=self.timeout
            )
        except Exception as exc:  # a bad URL or a broken receiver fails this delivery only
            return f"{type(exc).__name__}: {exc}"[:500]
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"

    async def _record(self, delivery_id: str, error: str | None) -> None:
        now = self.clock.now()
        async with self.db.transaction() as session:
            delivery = await session.get(WebhookDelivery, delivery_id)
            if delivery is None:
                return
            delivery.attempts += 1
            if error is None:
                delivery.state, delivery.lastError = "delivered", None
                return
            delivery.lastError = error
            if delivery.attempts >= MAX_ATTEMPTS:
                delivery.state = "failed"
                log.warning("webhook failed", extra={"delivery": delivery_id, "error": error})
                return
            wait = min(MAX_BACKOFF_SECONDS, BASE_SECONDS * 2 ** (delivery.attempts - 1))
            delivery.nextAt = now + dt.timedelta(seconds=wait)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
