"""Jobs: which bus event schedules which email, when, to whom, and what cancels it.

Jobs are JSON files (``jobs/*.json`` in this package, plus ``AIDPOST_MAILER_JOBS_DIR``,
whose files add jobs or replace shipped ones of the same name), validated against
``jobs/schema.json`` when the mailer starts: a bad file stops the start with a message that
names the file and the place in it. docs/mailer.md describes the format.

Paths (``data.event.timeStart``) look into the triggering bus event: ``id``, ``type``,
``time``, ``data``, and ``before`` (the organizer agency or event as it was before this
change, when the event is an organizer change).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any

from aidpost.core.validation import parse_datetime, schema_problem
from aidpost.mailer import cron
from aidpost.mailer.cron import Cron

ROLES = {"owner": 2, "manager": 3, "support": 4}
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_PATH = re.compile(r"^(id|type|time|data|before)(\.[A-Za-z0-9_]+)*$")
_DURATION = re.compile(
    r"^(?P<sign>[-+]?)P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?$"
)


class JobError(ValueError):
    """A job file that cannot be used; the message says which and why."""


def duration(text: str) -> dt.timedelta:
    """ISO 8601 durations of days, hours, minutes and seconds: ``PT10M``, ``-PT24H``."""
    match = _DURATION.match(text)
    if match is None or text.rstrip("+-") in ("P", "PT"):
        raise ValueError(f"not a duration: {text!r}")
    parts = {k: int(v or 0) for k, v in match.groupdict().items() if k != "sign"}
    delta = dt.timedelta(days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"])
    return -delta if match["sign"] == "-" else delta


_MISSING = object()


def _walk(root: Mapping[str, Any], path: str) -> Any:
    value: Any = root
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def lookup(root: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path, or None where the path leads nowhere."""
    value = _walk(root, path)
    return None if value is _MISSING else value


def _exists(root: Mapping[str, Any], path: str) -> bool:
    value = _walk(root, path)
    return value is not _MISSING and value is not None


def holds(conditions: Iterable[Mapping[str, Any]], root: Mapping[str, Any]) -> bool:
    """Every condition holds (an empty list always does)."""
    for condition in conditions:
        path = condition["path"]
        value = lookup(root, path)
        if "equals" in condition and value != condition["equals"]:
            return False
        if "not_equals" in condition and value == condition["not_equals"]:
            return False
        if "in" in condition and value not in condition["in"]:
            return False
        if "exists" in condition and _exists(root, path) != condition["exists"]:
            return False
    return True


def key(template: str, root: Mapping[str, Any]) -> str:
    """``event:{data.id}`` with the values filled in."""
    return _PLACEHOLDER.sub(lambda m: str(lookup(root, m.group(1))), template)


@dataclasses.dataclass(frozen=True)
class Canceller:
    event: str
    source: str
    conditions: tuple[Mapping[str, Any], ...]


@dataclasses.dataclass(frozen=True)
class Job:
    name: str
    description: str
    event: str
    conditions: tuple[Mapping[str, Any], ...]
    source: str
    send_at: str  # "now" or a path
    offset: dt.timedelta
    expires: str | None
    expires_offset: dt.timedelta
    on_repeat: str
    cancellers: tuple[Canceller, ...]
    to: tuple[Mapping[str, Any], ...]
    template: str
    context: Mapping[str, Any]
    max_attempts: int
    origin: str  # the file it came from
    # Context names dropped from the stored email once it is sent, failed or cancelled
    # (a password link's token).
    secret: tuple[str, ...] = ()
    # A job triggered by a schedule instead of a bus event (``event`` is then "").
    schedule: Cron | None = None
    grace: dt.timedelta = dt.timedelta(hours=1)

    def when(
        self, root: Mapping[str, Any], now: dt.datetime
    ) -> tuple[dt.datetime, dt.datetime | None]:
        """When to send, and when the email expires (None: never)."""
        base = now if self.send_at == "now" else _time(lookup(root, self.send_at), now)
        expires = None
        if self.expires is not None:
            anchor = lookup(root, self.expires)
            if anchor is not None:
                expires = _time(anchor, now) + self.expires_offset
        return base + self.offset, expires

    def recipients(self, root: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The recipient specifications with their values filled in; resolved to addresses
        when the email is sent (the people may change meanwhile)."""
        out: list[dict[str, Any]] = []
        for spec in self.to:
            if "address" in spec:
                out.append({"address": lookup(root, spec["address"])})
            elif "staff_of" in spec:
                roles = sorted(ROLES[r] for r in spec["roles"])
                out.append({"staff_of": lookup(root, spec["staff_of"]), "roles": roles})
            elif "platform_admins" in spec:
                out.append({"platform_admins": True})
            elif "participant" in spec:
                out.append({"participant": lookup(root, spec["participant"])})
            elif "person" in spec:
                out.append({"person": lookup(root, spec["person"])})
        return out

    def render_context(self, root: Mapping[str, Any]) -> dict[str, Any]:
        """Values copied now, and references (``{"current": "event", "id": ...}``) kept to
        be looked up when the email is sent."""
        out: dict[str, Any] = {}
        for name, spec in self.context.items():
            if isinstance(spec, str):
                out[name] = lookup(root, spec)
            else:
                out[name] = {"$current": spec["current"], "id": lookup(root, spec["id"])}
        return out


def _time(value: Any, fallback: dt.datetime) -> dt.datetime:
    if isinstance(value, str):
        try:
            return parse_datetime(value)
        except ValueError:
            return fallback
    return fallback


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(
        files("aidpost.mailer").joinpath("jobs/schema.json").read_text(encoding="utf-8")
    )
    return schema


def _check_paths(raw: Mapping[str, Any], origin: str) -> None:
    """What the schema cannot say: placeholders in keys are paths."""
    templates = [raw["source"]] + [c["source"] for c in raw.get("cancel_when", [])]
    for template in templates:
        for placeholder in _PLACEHOLDER.findall(template):
            if not _PATH.match(placeholder):
                raise JobError(f"{origin}: {template!r}: {{{placeholder}}} is not a path")
        if "{" in _PLACEHOLDER.sub("", template) or "}" in _PLACEHOLDER.sub("", template):
            raise JobError(f"{origin}: {template!r}: unbalanced braces")


def parse(raw: Any, origin: str) -> Job:
    problem = schema_problem(_schema(), raw)
    if problem is not None:
        raise JobError(f"{origin}: {problem}")
    _check_paths(raw, origin)
    send = raw.get("send", {})
    trigger = raw["trigger"]
    schedule = None
    if "schedule" in trigger:
        if "if" in trigger:
            raise JobError(f"{origin}: at trigger: a schedule takes no conditions")
        try:
            schedule = cron.parse(trigger["schedule"], trigger.get("timezone", "UTC"))
        except cron.CronError as exc:
            raise JobError(f"{origin}: at trigger/schedule: {exc}") from None
    elif "timezone" in trigger or "grace" in trigger:
        raise JobError(f"{origin}: at trigger: timezone and grace go with a schedule")
    return Job(
        name=raw["name"],
        description=raw.get("description", ""),
        event=trigger.get("event", ""),
        schedule=schedule,
        grace=duration(trigger["grace"]) if "grace" in trigger else dt.timedelta(hours=1),
        conditions=tuple(raw["trigger"].get("if", [])),
        source=raw["source"],
        send_at=send.get("at", "now"),
        offset=duration(send["offset"]) if "offset" in send else dt.timedelta(0),
        expires=send.get("expires"),
        expires_offset=(
            duration(send["expires_offset"]) if "expires_offset" in send else dt.timedelta(0)
        ),
        on_repeat=raw.get("on_repeat", "keep"),
        cancellers=tuple(
            Canceller(c["event"], c["source"], tuple(c.get("if", [])))
            for c in raw.get("cancel_when", [])
        ),
        to=tuple(raw["to"]),
        template=raw["template"],
        context=raw.get("context", {}),
        max_attempts=raw.get("max_attempts", 8),
        origin=origin,
        secret=tuple(raw.get("secret", [])),
    )


def load_file(path: Path) -> Job:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise JobError(f"{path}: cannot be read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise JobError(f"{path}: not JSON: {exc.msg} at line {exc.lineno}") from exc
    return parse(raw, str(path))


def load(extra_dir: str | None = None) -> dict[str, Job]:
    """The shipped jobs, then those of ``extra_dir`` (replacing shipped ones by name);
    jobs with ``"enabled": false`` are left out."""
    shipped = Path(str(files("aidpost.mailer").joinpath("jobs")))
    paths = sorted(p for p in shipped.glob("*.json") if p.name != "schema.json")
    if extra_dir:
        folder = Path(extra_dir)
        if not folder.is_dir():
            raise JobError(f"{folder}: the jobs directory does not exist")
        paths += sorted(folder.glob("*.json"))
    jobs: dict[str, Job] = {}
    disabled: set[str] = set()
    for path in paths:
        job = load_file(path)
        raw_enabled = json.loads(path.read_text(encoding="utf-8")).get("enabled", True)
        if raw_enabled:
            jobs[job.name] = job
            disabled.discard(job.name)
        else:
            jobs.pop(job.name, None)
            disabled.add(job.name)
    return jobs
