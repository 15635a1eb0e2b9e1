"""Cron expressions: fields, names, steps, the day-of-month/day-of-week rule, time zones."""

from __future__ import annotations

import datetime as dt

import pytest

from aidpost.mailer.cron import CronError, parse

UTC = dt.UTC


def t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_fields_ranges_steps_lists_and_names() -> None:
    c = parse("*/15 8-17/3 * jan,jul mon-fri")
    assert c.minutes == {0, 15, 30, 45}
    assert c.hours == {8, 11, 14, 17}
    assert c.months == {1, 7}
    assert c.weekdays == {1, 2, 3, 4, 5}
    assert parse("5/20 * * * *").minutes == {5, 25, 45}
    assert parse("0 0 * * 7").weekdays == {0} == parse("0 0 * * sun").weekdays


def test_matching_and_the_day_rule() -> None:
    weekly = parse("0 8 * * mon")
    assert weekly.matches(t("2026-06-01T08:00"))  # a Monday
    assert not weekly.matches(t("2026-06-02T08:00"))
    assert not weekly.matches(t("2026-06-01T08:01"))
    # Both restricted: the 13th, or any Friday (Vixie cron).
    either = parse("0 0 13 * fri")
    assert either.matches(t("2026-06-13T00:00"))  # a Saturday, the 13th
    assert either.matches(t("2026-06-05T00:00"))  # a Friday, the 5th
    assert not either.matches(t("2026-06-06T00:00"))


def test_next_and_latest() -> None:
    weekly = parse("0 8 * * mon")
    assert weekly.next_after(t("2026-06-01T08:00")) == t("2026-06-08T08:00")
    assert weekly.next_after(t("2026-06-01T07:59:30")) == t("2026-06-01T08:00")
    assert weekly.latest(t("2026-06-01T08:40:10"), dt.timedelta(hours=1)) == t("2026-06-01T08:00")
    assert weekly.latest(t("2026-06-01T09:01"), dt.timedelta(hours=1)) is None  # missed
    assert parse("0 0 29 2 *").next_after(t("2026-03-01T00:00")) == t("2028-02-29T00:00")
    assert parse("0 0 31 2 *").next_after(t("2026-03-01T00:00")) is None  # never


def test_time_zones_follow_the_wall_clock() -> None:
    warsaw = parse("0 8 * * *", "Europe/Warsaw")
    assert warsaw.next_after(t("2026-01-10T00:00")) == t("2026-01-10T07:00")  # CET, +1
    assert warsaw.next_after(t("2026-07-10T00:00")) == t("2026-07-10T06:00")  # CEST, +2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("* * * *", "has 5 fields, this has 4"),
        ("60 * * * *", "minute: 60 is outside 0-59"),
        ("* 24 * * *", "hour: 24 is outside 0-23"),
        ("* * 0 * *", "day of month: 0 is outside 1-31"),
        ("* * * 13 *", "month: 13 is outside 1-12"),
        ("* * * * 8", "day of week: 8 is outside 0-7"),
        ("*/0 * * * *", "bad step"),
        ("10-5 * * * *", "runs backwards"),
        ("x * * * *", "'x' is not a number"),
        ("\uff11 * * * *", "is not a number"),
        ("* * * * funday", "is not a number"),
    ],
)
def test_bad_expressions(text: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        parse(text)


def test_unknown_zone() -> None:
    with pytest.raises(CronError, match="unknown time zone"):
        parse("* * * * *", "Mars/Olympus")
    with pytest.raises(CronError, match="unknown time zone"):
        parse("* * * * *", "../../etc/passwd")
