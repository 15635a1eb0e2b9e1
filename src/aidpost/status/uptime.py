"""Uptime arithmetic over check results, with gaps and maintenance windows.

A check result stands for the time from when it was taken until the next result, but for
at most the interval it was taken at (``covers``): a prober that stopped for an hour leaves
an hour of *no data*, never an hour of "up". Time inside a maintenance window counts as
maintenance whatever the checks said, and is left out of the percentage, as is time
without data:

    uptime = (up + degraded) / (up + degraded + down)

so a window with no data at all has no percentage (``None``), not 100 %.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Interval = tuple[dt.datetime, dt.datetime]


@dataclass(frozen=True)
class Sample:
    at: dt.datetime
    ok: bool
    degraded: bool
    covers: float  # seconds


@dataclass(frozen=True)
class Tally:
    up: float = 0.0
    degraded: float = 0.0
    down: float = 0.0
    maintenance: float = 0.0
    nodata: float = 0.0

    @property
    def observed(self) -> float:
        return self.up + self.degraded + self.down

    @property
    def uptime(self) -> float | None:
        """Percentage of observed time outside maintenance that the component was up."""
        if self.observed <= 0:
            return None
        return 100.0 * (self.up + self.degraded) / self.observed

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.up + other.up,
            self.degraded + other.degraded,
            self.down + other.down,
            self.maintenance + other.maintenance,
            self.nodata + other.nodata,
        )


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    out: list[list[dt.datetime]] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(s, e) for s, e in out]


def _overlap(a: Interval, b: Interval) -> float:
    start, end = max(a[0], b[0]), min(a[1], b[1])
    return max(0.0, (end - start).total_seconds())


def tally(
    samples: Sequence[Sample],
    start: dt.datetime,
    end: dt.datetime,
    maintenance: Iterable[Interval] = (),
) -> Tally:
    """Seconds of ``[start, end)`` up, degraded, down, in maintenance and without data.

    ``samples`` are sorted by time; include the last one taken before ``start`` (it may
    reach into the window)."""
    if end <= start:
        return Tally()
    window = (start, end)
    windows = [(max(s, start), min(e, end)) for s, e in merge(maintenance)]
    windows = [w for w in windows if w[1] > w[0]]
    in_maintenance = sum((e - s).total_seconds() for s, e in windows)
    up = degraded = down = 0.0
    for i, sample in enumerate(samples):
        until = sample.at + dt.timedelta(seconds=sample.covers)
        if i + 1 < len(samples):
            until = min(until, samples[i + 1].at)
        segment = (max(sample.at, start), min(until, end))
        if segment[1] <= segment[0]:
            continue
        seconds = _overlap(segment, window) - sum(_overlap(segment, w) for w in windows)
        if not sample.ok:
            down += seconds
        elif sample.degraded:
            degraded += seconds
        else:
            up += seconds
    total = (end - start).total_seconds()
    nodata = max(0.0, total - up - degraded - down - in_maintenance)
    return Tally(up, degraded, down, in_maintenance, nodata)


def day_bounds(day: dt.date) -> Interval:
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)
