"""The mailer component: schedules emails from bus events, sends them, and serves the
staff API. ``aidpost serve`` runs the worker in the process (``AIDPOST_MAILER_WORKER``);
``aidpost mailer run [--once]`` runs it alone (a container, cron, a Kubernetes CronJob)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter

from aidpost.core.bus import Subscription, stop_all
from aidpost.core.component import database_check
from aidpost.core.directory import (
    Directory,
    DirectoryUnavailable,
    HttpDirectory,
    HttpTranscripts,
    LocalDirectory,
    LocalTranscripts,
    Transcripts,
)
from aidpost.core.http import Check
from aidpost.core.migrate import upgrade
from aidpost.mailer import jobs as jobs_mod
from aidpost.mailer.api import router
from aidpost.mailer.service import MailerService
from aidpost.mailer.transport import create_transport
from aidpost.runtime import Runtime

HISTORY = "mailer"
# Which stream carries which event type the jobs may name.
STREAMS = {
    "auth.password_": "auth.passwords",
    "organizer.": "organizer.changes",
    "help.": "help.requests",
    "chat.": "messenger.chats",
    "participant.": "participant.changes",
    "status.": "status.notifications",
}


def stream_of(event_type: str) -> str:
    for prefix, stream in STREAMS.items():
        if event_type.startswith(prefix):
            return stream
    raise jobs_mod.JobError(f"no stream carries events of type {event_type!r}")


class MailerComponent:
    name = "mailer"

    def __init__(self, rt: Runtime) -> None:
        s = rt.settings
        self.rt = rt
        self.db = rt.database(s.mailer_db)
        jobs = jobs_mod.load(s.mailer.jobs_dir)
        m = s.mailer
        transport = create_transport(
            m.transport_url,
            s.core.data_dir,
            username=m.smtp_username,
            password=m.smtp_password,
            timeout=m.smtp_timeout_seconds,
            verify_tls=m.smtp_verify_tls,
        )
        self.service = MailerService(
            self.db,
            rt.clock,
            jobs,
            transport,
            self._directory(),
            m,
            worker_id=rt.instance,
            transcripts=self._transcripts(),
        )
        # The organizer's changes always: recipients and "before" values come from them.
        streams = {"organizer.changes"} | {stream_of(t) for t in self.service.streams()}
        self.subscriptions = [
            Subscription(rt.bus, stream, "mailer", self.service.on_event)
            for stream in sorted(streams)
        ]
        self._stop = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None

    def _directory(self) -> Directory:
        s = self.rt.settings
        if s.mailer.participant_url:
            return HttpDirectory(s.mailer.participant_url, s.participant.api_key, strict=True)
        component = self

        async def lookup(ids: list[int]) -> dict[str, Any]:
            service = getattr(component, "participants", None)
            if service is None:
                raise DirectoryUnavailable(
                    "participants are in another process: set AIDPOST_MAILER_PARTICIPANT_URL"
                )
            found: dict[str, Any] = await service.users(ids)
            return found

        return LocalDirectory(lookup)

    def _transcripts(self) -> Transcripts:
        s = self.rt.settings
        if s.mailer.messenger_url:
            return HttpTranscripts(s.mailer.messenger_url, s.messenger.api_key)
        component = self

        async def lookup(chat_id: str) -> dict[str, Any] | None:
            service = getattr(component, "messenger", None)
            if service is None:
                raise DirectoryUnavailable(
                    "the messenger is in another process: set AIDPOST_MAILER_MESSENGER_URL"
                )
            found: dict[str, Any] | None = await service.transcript(chat_id)
            return found

        return LocalTranscripts(lookup)

    def routers(self) -> Sequence[APIRouter]:
        return (router,)

    def state(self) -> dict[str, Any]:
        return {"mailer": self.service}

    def checks(self) -> Sequence[Check]:
        return [database_check("mailer_db", self.db, HISTORY)]

    async def prepare(self) -> None:
        await upgrade(self.db, HISTORY)
        await self.service.seed_templates()
        known = {t.name for t in await self.service.templates()}
        for job in self.service.jobs.values():
            if job.template not in known:
                raise jobs_mod.JobError(f"{job.origin}: template {job.template!r} does not exist")

    async def start(self) -> None:
        await self.prepare()
        for sub in self.subscriptions:
            sub.start_background()
        if self.rt.settings.mailer.worker:
            self._stop.clear()
            self._worker = asyncio.create_task(self.service.run(self._stop), name="mailer")

    async def stop(self) -> None:
        self._stop.set()
        if self._worker is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._worker, 30)
        await stop_all(self.subscriptions)
