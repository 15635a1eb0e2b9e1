"""Uptime arithmetic: coverage, gaps, maintenance, windows."""

from __future__ import annotations

import datetime as dt

import pytest

from aidpost.status.uptime import Sample, Tally, merge, tally

T0 = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def every(start: float, end: float, ok: bool = True, step: float = 1.0) -> list[Sample]:
    """One sample per ``step`` minutes from ``start`` (inclusive) to ``end`` (exclusive)."""
    out, m = [], start
    while m < end:
        out.append(Sample(at(m), ok, False, step * 60))
        m += step
    return out


def test_steady_checks_cover_the_window_exactly() -> None:
    t = tally(every(0, 60), at(0), at(60))
    assert (t.up, t.down, t.nodata, t.maintenance) == (3600, 0, 0, 0)
    assert t.uptime == 100.0


def test_ten_minutes_down_in_an_hour() -> None:
    samples = every(0, 20) + every(20, 30, ok=False) + every(30, 60)
    t = tally(samples, at(0), at(60))
    assert (t.up, t.down) == (3000, 600)
    assert t.uptime == pytest.approx(100 * 50 / 60)


def test_a_gap_is_no_data_not_up() -> None:
    # The prober stopped for 30 minutes: the last sample counts for its interval only.
    samples = every(0, 15) + every(45, 60)
    t = tally(samples, at(0), at(60))
    assert (t.up, t.nodata) == (1800, 1800)
    assert t.uptime == 100.0  # of the observed time


def test_a_failure_before_a_gap_counts_only_for_its_interval() -> None:
    samples = [*every(0, 10), Sample(at(10), False, False, 60), *every(50, 60)]
    t = tally(samples, at(0), at(60))
    assert (t.up, t.down, t.nodata) == (1200, 60, 2340)
    assert t.uptime == pytest.approx(100 * 1200 / 1260)


def test_no_samples_no_percentage() -> None:
    t = tally([], at(0), at(60))
    assert t.nodata == 3600 and t.uptime is None


def test_maintenance_is_left_out_of_the_percentage() -> None:
    # Down during a maintenance window from minute 20 to 40: not held against uptime.
    samples = every(0, 20) + every(20, 40, ok=False) + every(40, 60)
    t = tally(samples, at(0), at(60), [(at(20), at(40))])
    assert (t.up, t.down, t.maintenance, t.nodata) == (2400, 0, 1200, 0)
    assert t.uptime == 100.0


def test_overlapping_maintenance_windows_count_once() -> None:
    windows = [(at(10), at(30)), (at(20), at(40)), (at(50), at(90))]
    assert merge(windows) == [(at(10), at(40)), (at(50), at(90))]
    t = tally(every(0, 60), at(0), at(60), windows)
    assert (t.maintenance, t.up) == (2400, 1200)


def test_a_sample_before_the_window_reaches_into_it() -> None:
    samples = [Sample(at(-0.5), False, False, 60), *every(0.5, 10)]
    t = tally(samples, at(0), at(10))
    assert t.down == 30 and t.up == 570


def test_degraded_counts_as_up_but_is_told_apart() -> None:
    samples = [Sample(at(m), True, m >= 30, 60) for m in range(60)]
    t = tally(samples, at(0), at(60))
    assert (t.up, t.degraded, t.uptime) == (1800, 1800, 100.0)


def test_tallies_add_up() -> None:
    a = Tally(up=10, down=10)
    b = Tally(up=30, nodata=5)
    assert (a + b).uptime == 80.0 and (a + b).nodata == 5


def test_empty_window() -> None:
    assert tally(every(0, 10), at(10), at(10)) == Tally()


def test_link_tokens_are_hidden_in_the_access_log() -> None:
    from aidpost.core.http import _redacted

    assert _redacted("/statuspage/confirm/abc_DEF-123") == "/statuspage/confirm/[hidden]"
    assert _redacted("/statuspage/unsubscribe/xyz") == "/statuspage/unsubscribe/[hidden]"
    assert _redacted("/statuspage/components/api") == "/statuspage/components/api"
