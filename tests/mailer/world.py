"""A mailer with a fake clock, a real SMTP server and the bus events that drive it."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from sqlalchemy import select

from aidpost.core.bus import Event
from aidpost.core.clock import FakeClock
from aidpost.core.db import Database
from aidpost.core.directory import LocalDirectory
from aidpost.core.settings import MailerSettings
from aidpost.mailer import jobs as jobs_mod
from aidpost.mailer.models import EmailLog, ScheduledEmail
from aidpost.mailer.service import MailerService
from aidpost.mailer.transport import SmtpTransport
from tests.mailer.smtp import SmtpServer

T0 = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def iso(when: dt.datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


class World:
    def __init__(self, db: Database, smtp: SmtpServer) -> None:
        self.db, self.smtp = db, smtp
        self.clock = FakeClock(T0)
        self.participants: dict[int, dict[str, Any]] = {}
        self.settings = MailerSettings(
            transport_url=smtp.url, lease_seconds=60, backoff_base_seconds=60, batch=10
        )
        self.jobs = jobs_mod.load()

    def service(self, worker: str = "w1", **settings: Any) -> MailerService:
        async def lookup(ids: list[int]) -> dict[str, Any]:
            return {str(i): self.participants[i] for i in ids if i in self.participants}

        merged = self.settings.model_copy(update=settings)
        return MailerService(
            self.db,
            self.clock,
            self.jobs,
            SmtpTransport(merged.transport_url, timeout=5),
            LocalDirectory(lookup),
            merged,
            worker_id=worker,
            rng=lambda: 0.0,
        )

    async def publish(self, type_: str, data: dict[str, Any], event_id: str | None = None) -> Event:
        event = Event(type_, data, id=event_id or uuid.uuid4().hex, time=iso(self.clock.now()))
        await self.service().on_event(event)
        return event

    async def user(self, uid: int, email: str, role: int, agency: int | None) -> None:
        user = {"id": uid, "email": email, "firstName": "F", "lastName": "L", "role": role,
                "agencyId": agency}  # fmt: skip
        await self.publish("organizer.user.changed.v1", {"id": uid, "user": user,
                           "deleted": False, "change": "insert"})  # fmt: skip

    async def agency(self, aid: int, change: str, approved: bool, name: str = "Red Cross") -> None:
        agency = {"id": aid, "name": name, "address": "Main St 1", "website": "https://rc.example",
                  "approved": approved}  # fmt: skip
        await self.publish("organizer.agency.changed.v1", {"id": aid, "agency": agency,
                           "deleted": False, "change": change})  # fmt: skip

    async def event(
        self, eid: int, change: str, start: dt.datetime | None, agency: int = 1
    ) -> None:
        if change == "delete" or start is None:
            data: dict[str, Any] = {"id": eid, "event": None, "deleted": True, "change": "delete"}
        else:
            data = {"id": eid, "deleted": False, "change": change, "event": {
                "id": eid, "name": "City Marathon", "description": "42 km", "address": "Park",
                "lat": 52.2, "lng": 21.0, "timeStart": iso(start),
                "timeEnd": iso(start + dt.timedelta(hours=6)), "agencyId": agency}}  # fmt: skip
        await self.publish("organizer.event.changed.v1", data)

    async def emails(self, job: str | None = None) -> list[ScheduledEmail]:
        async with self.db.session() as session:
            stmt = select(ScheduledEmail).order_by(ScheduledEmail.createdAt, ScheduledEmail.id)
            if job:
                stmt = stmt.where(ScheduledEmail.job == job)
            return list((await session.scalars(stmt)).all())

    async def log(self, email_id: str) -> list[tuple[str | None, str, str, str]]:
        async with self.db.session() as session:
            rows = await session.scalars(
                select(EmailLog).where(EmailLog.emailId == email_id).order_by(EmailLog.id)
            )
            return [(r.fromState, r.toState, r.actor, r.note) for r in rows.all()]

    def sent_to(self) -> list[tuple[str, list[str]]]:
        return [(str(r.message["Subject"]), sorted(r.recipients)) for r in self.smtp.received]

    async def staff(self) -> None:
        """Platform admin 1, agency 1 with owner 10, manager 11, support 12."""
        await self.user(1, "admin@aidpost.example", 1, None)
        await self.user(2, "root@aidpost.example", 0, None)
        await self.user(10, "owner@rc.example", 2, 1)
        await self.user(11, "manager@rc.example", 3, 1)
        await self.user(12, "support@rc.example", 4, 1)
        await self.user(20, "owner@other.example", 2, 2)


def context(email: ScheduledEmail) -> Any:
    return json.loads(email.context)
