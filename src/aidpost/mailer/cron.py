"""Cron expressions (five fields: minute, hour, day of month, month, day of week) for jobs
triggered by a schedule.

Fields take ``*``, numbers, ranges ``a-b``, steps ``*/n`` and ``a-b/n``, and lists of
those; months and weekdays also by name (``jan``, ``mon``); weekday 0 and 7 are Sunday.
As in Vixie cron, when both the day of month and the day of week are restricted, a day
matching either counts. Times are matched on the wall clock of ``zone`` (UTC by default).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    )
}
DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
MINUTE = dt.timedelta(minutes=1)


class CronError(ValueError):
    """An expression that is not a cron expression; the message says which part."""


def _field(text: str, low: int, high: int, names: dict[str, int], what: str) -> frozenset[int]:
    out: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isascii() or not step_text.isdigit() or int(step_text) < 1:
                raise CronError(f"{what}: bad step in {part!r}")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        else:
            first, dash, last = base.partition("-")
            start = _value(first, low, high, names, what)
            end = _value(last, low, high, names, what) if dash else start
            if dash == "" and step_text:
                end = high  # "5/15": from 5 to the end, every 15
            if end < start:
                raise CronError(f"{what}: range {base!r} runs backwards")
        out.update(range(start, end + 1, step))
    return frozenset(out)


def _value(text: str, low: int, high: int, names: dict[str, int], what: str) -> int:
    lowered = text.lower()
    if lowered in names:
        return names[lowered]
    if not text.isascii() or not text.isdigit():
        raise CronError(f"{what}: {text!r} is not a number")
    number = int(text)
    if not low <= number <= high:
        raise CronError(f"{what}: {number} is outside {low}-{high}")
    return number


@dataclass(frozen=True)
class Cron:
    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_any: bool
    weekdays_any: bool
    zone: ZoneInfo

    def matches(self, moment: dt.datetime) -> bool:
        local = moment.astimezone(self.zone)
        return local.minute in self.minutes and local.hour in self.hours and self._day(local)

    def _day(self, local: dt.datetime) -> bool:
        if local.month not in self.months:
            return False
        weekday = (local.weekday() + 1) % 7  # cron: Sunday is 0
        by_day, by_weekday = local.day in self.days, weekday in self.weekdays
        if self.days_any or self.weekdays_any:
            return by_day and by_weekday
        return by_day or by_weekday

    def latest(self, now: dt.datetime, within: dt.timedelta) -> dt.datetime | None:
        """The latest matching minute at or before ``now`` and not older than ``within``."""
        moment = now.astimezone(dt.UTC).replace(second=0, microsecond=0)
        oldest = now - within
        while moment >= oldest:
            if self.matches(moment):
                return moment
            moment -= MINUTE
        return None

    def next_after(self, moment: dt.datetime, days: int = 4 * 366) -> dt.datetime | None:
        """The first matching minute after ``moment`` (within ``days``), in UTC."""
        start = (moment.astimezone(dt.UTC) + MINUTE).replace(second=0, microsecond=0)
        day = start.astimezone(self.zone).date()
        for _ in range(days):
            midnight = dt.datetime(day.year, day.month, day.day, tzinfo=self.zone)
            if self._day(midnight):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        local = midnight.replace(hour=hour, minute=minute)
                        found = local.astimezone(dt.UTC)
                        if found >= start and self.matches(found):
                            return found
            day += dt.timedelta(days=1)
        return None


def parse(text: str, zone: str = "UTC") -> Cron:
    parts = text.split()
    if len(parts) != 5:
        raise CronError(f"{text!r}: a cron expression has 5 fields, this has {len(parts)}")
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(f"unknown time zone {zone!r}") from None
    minute, hour, day, month, weekday = parts
    weekdays = _field(weekday, 0, 7, DAYS, "day of week")
    if 7 in weekdays:
        weekdays = (weekdays - {7}) | {0}
    return Cron(
        text=text,
        minutes=_field(minute, 0, 59, {}, "minute"),
        hours=_field(hour, 0, 23, {}, "hour"),
        days=_field(day, 1, 31, {}, "day of month"),
        months=_field(month, 1, 12, MONTHS, "month"),
        weekdays=weekdays,
        days_any=day == "*",
        weekdays_any=weekday == "*",
        zone=tz,
    )
