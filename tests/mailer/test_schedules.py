"""Jobs on a schedule: each occurrence sends once, however many workers or overlapping runs
look; an occurrence missed for longer than the grace is skipped; bad schedules refused."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from aidpost.mailer import jobs as jobs_mod
from aidpost.mailer.jobs import JobError
from aidpost.mailer.templates import Parts
from tests.mailer.world import T0, World

WEEKLY = {
    "name": "weekly-check",
    "description": "Monday morning: the platform administrators check the week's events.",
    "trigger": {"schedule": "0 8 * * mon", "timezone": "Europe/Warsaw", "grace": "PT2H"},
    "source": "weekly:{time}",
    "to": [{"platform_admins": True}],
    "template": "weekly-check",
    "context": {"occurrence": "data.occurrence"},
}  # fmt: skip


async def with_job(world: World, tmp_path: Path, job: dict[str, Any]) -> None:
    (tmp_path / "jobs").mkdir(exist_ok=True)
    (tmp_path / "jobs" / "weekly.json").write_text(json.dumps(job))
    world.jobs = jobs_mod.load(str(tmp_path / "jobs"))
    parts = Parts("Weekly check", "The week from {{ occurrence }}: look at the events.", None)
    await world.service().save_template("weekly-check", parts, "test")


async def test_each_occurrence_once_across_workers(world: World, tmp_path: Path) -> None:
    await world.staff()  # two platform administrators
    await with_job(world, tmp_path, WEEKLY)
    monday_8_warsaw = dt.datetime(2026, 6, 1, 6, 0, tzinfo=dt.UTC)  # CEST
    world.clock.set(monday_8_warsaw - dt.timedelta(minutes=1))
    assert await world.service("w1").fire_schedules() == 0  # not yet
    world.clock.set(monday_8_warsaw + dt.timedelta(minutes=30))
    counts = [await world.service(w).fire_schedules() for w in ("w1", "w2", "w1")]
    assert counts == [1, 0, 0]
    assert await world.service("w2").run_once() == 1
    [received] = world.smtp.received
    assert sorted(received.recipients) == ["admin@aidpost.example", "root@aidpost.example"]
    [email] = await world.emails("weekly-check")
    assert email.sourceKey == "weekly:2026-06-01T06:00:00+00:00"

    # The next Monday the mailer was down until 10:30 Warsaw time: more than the 2 h grace.
    world.clock.set(monday_8_warsaw + dt.timedelta(days=7, hours=2, minutes=30))
    assert await world.service("w1").fire_schedules() == 0
    # The Monday after, on time again.
    world.clock.set(monday_8_warsaw + dt.timedelta(days=14, minutes=1))
    assert await world.service("w1").run_once() == 1
    assert len(world.smtp.received) == 2


async def test_jobs_api_shows_the_next_run(world: World, tmp_path: Path) -> None:
    await with_job(world, tmp_path, WEEKLY)
    job = world.jobs["weekly-check"]
    assert job.schedule is not None and job.event == ""
    assert job.schedule.next_after(T0) == dt.datetime(2026, 6, 8, 6, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("trigger", "message"),
    [
        ({"schedule": "0 8 * * someday"}, "at trigger/schedule: day of week"),
        ({"schedule": "0 8 * * mon", "timezone": "Nowhere/City"}, "unknown time zone"),
        ({"schedule": "0 8 * * mon", "if": [{"path": "data.x", "exists": True}]}, "no conditions"),
        ({"event": "help.requested.v1", "timezone": "UTC"}, "go with a schedule"),
        ({"schedule": "0 8 * * mon", "event": "help.requested.v1"}, "at trigger"),
        ({"schedule": "0 8 * * mon", "grace": "2 hours"}, "at trigger/grace"),
    ],
)
def test_bad_schedules_are_refused(trigger: dict[str, Any], message: str) -> None:
    with pytest.raises(JobError, match=message):
        jobs_mod.parse({**WEEKLY, "trigger": trigger}, "jobs/weekly.json")
