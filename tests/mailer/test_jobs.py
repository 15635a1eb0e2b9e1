"""Job files: the schema, durations, conditions and keys; bad files refused clearly."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from aidpost.mailer import jobs
from aidpost.mailer.jobs import JobError, duration, holds, key, parse


def valid() -> dict[str, Any]:
    return {
        "name": "x-job",
        "trigger": {"event": "help.requested.v1"},
        "source": "request:{data.requestId}",
        "to": [{"staff_of": "data.agencyId", "roles": ["owner"]}],
        "template": "help-request-waiting",
    }


def test_shipped_jobs_are_valid_and_name_their_templates() -> None:
    loaded = jobs.load()
    assert set(loaded) == {
        "agency-registered-admins",
        "agency-registered-owner",
        "agency-approved",
        "agency-blocked",
        "event-starting-soon",
        "help-request-waiting",
        "password-reset",
        "staff-account-created",
        "chat-transcript",
        "status-subscription-confirm",
        "status-notification",
    }
    assert loaded["help-request-waiting"].offset == dt.timedelta(minutes=5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT10M", dt.timedelta(minutes=10)),
        ("-PT24H", dt.timedelta(hours=-24)),
        ("P7D", dt.timedelta(days=7)),
        ("P1DT2H3M4S", dt.timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("+PT1S", dt.timedelta(seconds=1)),
    ],
)
def test_durations(text: str, expected: dt.timedelta) -> None:
    assert duration(text) == expected


@pytest.mark.parametrize("text", ["P", "PT", "10M", "PT1.5H", "P1W", "", "PT-1M"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        duration(text)


def test_conditions_and_keys() -> None:
    root = {"data": {"change": "update", "agency": {"approved": True}}, "before": None}
    assert holds([{"path": "data.change", "equals": "update"}], root)
    assert holds([{"path": "data.change", "in": ["insert", "update"]}], root)
    assert holds([{"path": "before.approved", "not_equals": True}], root)  # no before
    assert holds([{"path": "before", "exists": False}], root)
    assert not holds([{"path": "data.agency.approved", "equals": False}], root)
    assert not holds([{"path": "data.nothing.deeper", "exists": True}], root)
    assert key("agency:{data.agency.approved}/{id}", {**root, "id": "e1"}) == "agency:True/e1"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "Bad Name"}, "at name: 'Bad Name' does not match"),
        ({"trigger": {"event": "help.requested"}}, "at trigger/event"),
        ({"to": []}, "at to: [] should be non-empty"),
        ({"to": [{"staff_of": "data.agencyId", "roles": ["janitor"]}]}, "at to/0"),
        ({"send": {"at": "now", "offset": "10 minutes"}}, "at send/offset"),
        ({"send": {"at": "data; rm -rf"}}, "at send/at"),
        ({"source": "request:{data.requestId"}, "unbalanced braces"),
        ({"source": "request:{__class__}"}, "is not a path"),
        ({"surprise": 1}, "Additional properties are not allowed"),
        (
            {"trigger": {"event": "help.requested.v1", "if": [{"path": "data.x"}]}},
            "at trigger/if/0",
        ),
    ],
)
def test_a_bad_job_is_refused_with_where_and_why(change: dict[str, Any], message: str) -> None:
    with pytest.raises(JobError) as caught:
        parse({**valid(), **change}, "jobs/x.json")
    assert str(caught.value).startswith("jobs/x.json: ")
    assert message in str(caught.value)


def test_a_jobs_dir_adds_replaces_and_disables(tmp_path: Path) -> None:
    (tmp_path / "mine.json").write_text(json.dumps(valid()))
    replaced = {**valid(), "name": "help-request-waiting", "send": {"offset": "PT2M"}}
    (tmp_path / "escalate.json").write_text(json.dumps(replaced))
    off = {**valid(), "name": "agency-blocked", "enabled": False}
    (tmp_path / "off.json").write_text(json.dumps(off))
    loaded = jobs.load(str(tmp_path))
    assert "x-job" in loaded and "agency-blocked" not in loaded
    assert loaded["help-request-waiting"].offset == dt.timedelta(minutes=2)


def test_unreadable_job_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text('{"name": ')
    with pytest.raises(JobError, match=r"broken.json: not JSON: .* at line 1"):
        jobs.load(str(tmp_path))
    with pytest.raises(JobError, match="does not exist"):
        jobs.load(str(tmp_path / "missing"))
