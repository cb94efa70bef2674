"""Carbon-intensity sources. Each answers the mean intensity (gCO2e/kWh) over intervals of
the simulated clock, by integrating its curve exactly, so an interval that crosses an hour
boundary is weighted by the time spent on either side. The same call on a future interval
is the scheduler's forecast."""

from __future__ import annotations

import csv
import functools
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from greenfl.core.errors import FleetError
from greenfl.core.files import read_text
from greenfl.core.units import MAX_CI_G_PER_KWH, S_PER_HOUR


class CarbonIntensity(Protocol):
    def mean(self, t0_s: np.ndarray, t1_s: np.ndarray) -> np.ndarray:
        """Mean intensity over [t0, t1] (seconds on the simulated clock); at t0 if t0 == t1."""
        ...


def _mean_from_integral(F, t0: np.ndarray, t1: np.ndarray, at) -> np.ndarray:  # noqa: ANN001
    t0 = np.asarray(t0, dtype=np.float64)
    t1 = np.asarray(t1, dtype=np.float64)
    span = t1 - t0
    safe = np.where(span > 0, span, 1.0)
    return np.where(span > 0, (F(t1) - F(t0)) / safe, at(t0))


@dataclass(frozen=True)
class ConstantIntensity:
    ci_g_per_kwh: float

    def mean(self, t0_s: np.ndarray, t1_s: np.ndarray) -> np.ndarray:
        return np.full(np.broadcast(np.asarray(t0_s), np.asarray(t1_s)).shape, self.ci_g_per_kwh)


class HourlyProfile:
    """Hourly values repeated in a cycle: a 24-value hour-of-day profile in the region's
    local time, repeated every day, or (``yearly``) a year of hourly values repeated every
    year."""

    def __init__(self, hourly: tuple[float, ...], utc_offset_h: float, start_utc: datetime) -> None:
        self.values = np.asarray(hourly, dtype=np.float64)
        self.cum = np.concatenate([[0.0], np.cumsum(self.values)])  # value-hours from midnight
        start_h = start_utc.hour + start_utc.minute / 60 + start_utc.second / S_PER_HOUR
        self.start_local_h = start_h + utc_offset_h  # local hours since local midnight of day 0
        self.period_h = len(self.values)

        # The arithmetic lives in _HourlyStack, shared with RegionalIntensity's vectorised
        # pass over many regions: this profile is a stack of one.
        self._stack = _HourlyStack.of([self])  # type: ignore[assignment]

    @classmethod
    def yearly(cls, hourly: np.ndarray, year: int, start_utc: datetime) -> HourlyProfile:
        """A year of hourly values from 00:00 UTC on 1 January ``year``, repeated: the run
        starts at the same date and hour of that year as its own start (29 February falls
        on the 28th in a year without it), and wraps at the year's end."""
        if len(hourly) not in (8760, 8784):
            raise FleetError(
                f"a yearly trace holds 8,760 or 8,784 hourly values, not {len(hourly)}"
            )
        profile = cls(tuple(hourly), 0.0, start_utc)
        try:
            same = start_utc.replace(year=year)
        except ValueError:  # 29 February
            same = start_utc.replace(year=year, day=28)
        first = same.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
        profile.start_local_h = (same - first).total_seconds() / S_PER_HOUR
        profile._stack = _HourlyStack.of([profile])  # type: ignore[assignment]
        return profile

    def mean(self, t0_s: np.ndarray, t1_s: np.ndarray) -> np.ndarray:
        t0, t1 = np.broadcast_arrays(
            np.asarray(t0_s, dtype=np.float64), np.asarray(t1_s, dtype=np.float64)
        )
        return self._stack.mean(np.zeros(t0.shape, dtype=np.int64), t0, t1)


class Trace:
    """A step function from a CSV of ``timestamp,ci_g_per_kwh``: each value holds until the
    next timestamp; before the first and after the last, the nearest value holds."""

    def __init__(
        self, timestamps_utc_s: np.ndarray, values: np.ndarray, start_utc: datetime
    ) -> None:
        order = np.argsort(timestamps_utc_s)
        self.ts = np.asarray(timestamps_utc_s, dtype=np.float64)[order] - start_utc.timestamp()
        self.values = np.asarray(values, dtype=np.float64)[order]
        seg = np.diff(self.ts) * self.values[:-1]
        self.cum = np.concatenate([[0.0], np.cumsum(seg)])

    @classmethod
    def from_csv(cls, path: str | Path, start_utc: datetime) -> Trace:
        stamps, values = read_trace_csv(path)
        return cls(stamps, values, start_utc)

    def _integral(self, t_s: np.ndarray) -> np.ndarray:
        t = np.asarray(t_s, dtype=np.float64)
        inside = np.interp(t, self.ts, self.cum)
        before = (t - self.ts[0]) * self.values[0]
        after = self.cum[-1] + (t - self.ts[-1]) * self.values[-1]
        return np.where(t < self.ts[0], before, np.where(t > self.ts[-1], after, inside))

    def _at(self, t_s: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(self.ts, np.asarray(t_s, dtype=np.float64), side="right") - 1
        return self.values[np.clip(idx, 0, len(self.values) - 1)]

    def mean(self, t0_s: np.ndarray, t1_s: np.ndarray) -> np.ndarray:
        return _mean_from_integral(self._integral, t0_s, t1_s, self._at)


def read_trace_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(UTC timestamps in s, gCO2e/kWh) of a ``timestamp,ci_g_per_kwh`` CSV, checked row by
    row: every timestamp zoned, every value finite, >= 0 and at most MAX_CI_G_PER_KWH.
    Parsed once per file version:
    a run builds its sources several times (loop, planner, report), a year is 8,784 rows."""
    path = Path(path)
    if not path.is_file():
        raise FleetError(f"carbon-intensity trace not found: {path}")
    st = path.stat()
    stamps, values = _parse_trace(str(path.resolve()), st.st_mtime_ns, st.st_size)
    return stamps.copy(), values.copy()


@functools.lru_cache(maxsize=32)
def _parse_trace(name: str, _mtime_ns: int, _size: int) -> tuple[np.ndarray, np.ndarray]:
    path = Path(name)
    stamps, values = [], []
    text = read_text(path, "carbon-intensity trace", FleetError)
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise FleetError(f"{path}: not a CSV file: {exc}") from None
    for lineno, row in enumerate(rows, start=1):
        if not row or row[0].strip().lower() == "timestamp":
            continue
        try:
            when = datetime.fromisoformat(row[0].strip().replace("Z", "+00:00"))
            value = float(row[1])
        except (ValueError, IndexError):
            raise FleetError(
                f"{path}:{lineno}: expected 'timestamp,ci_g_per_kwh', got {','.join(row)!r}"
            ) from None
        if when.tzinfo is None:
            raise FleetError(f"{path}:{lineno}: timestamp needs a UTC offset or Z")
        if not math.isfinite(value) or not 0 <= value <= MAX_CI_G_PER_KWH:
            raise FleetError(
                f"{path}:{lineno}: intensity must be finite and in 0..{MAX_CI_G_PER_KWH:g} "
                f"gCO2e/kWh, got {value}"
            )
        stamps.append(when.timestamp())
        values.append(value)
    if not stamps:
        raise FleetError(f"{path}: trace has no rows")
    return np.array(stamps), np.array(values)


def yearly_trace(path: str | Path, year: int, start_utc: datetime) -> HourlyProfile:
    """The hourly values of calendar year ``year`` (UTC) in the trace at ``path``, repeated
    every year from the run's own date and hour (``HourlyProfile.yearly``). Rows outside
    that year are ignored; inside it every hour must be present, once, in order."""
    stamps, values = read_trace_csv(path)
    first = datetime(year, 1, 1, tzinfo=timezone.utc).timestamp()
    last = datetime(year + 1, 1, 1, tzinfo=timezone.utc).timestamp()
    inside = (stamps >= first) & (stamps < last)
    hours = (stamps[inside] - first) / S_PER_HOUR
    expected = np.arange(round((last - first) / S_PER_HOUR), dtype=np.float64)
    if len(hours) != len(expected) or not np.array_equal(hours, expected):
        raise FleetError(
            f"{path}: trace_year = {year} needs one row per hour of {year} (UTC), "
            f"{len(expected)} rows from {year}-01-01T00:00Z; it has {len(hours)} in that year"
        )
    return HourlyProfile.yearly(values[inside], year, start_utc)


class RegionalIntensity(Sequence[CarbonIntensity]):
    """One source per region, in fleet order, that also answers many clients' means at once:
    ``mean(region, t0, t1)``. Where every source is hourly or constant (the built-in fleet),
    that is one vectorised pass over the clients, not one pass per region (a round's
    accounting called numpy ~6 times per region before)."""

    def __init__(self, sources: Sequence[CarbonIntensity]) -> None:
        self._sources = tuple(sources)
        self._stack = _HourlyStack.of(self._sources)

    def __getitem__(self, i: int) -> CarbonIntensity:  # type: ignore[override]
        return self._sources[i]

    def __len__(self) -> int:
        return len(self._sources)

    def row_sources(self) -> dict[str, str]:
        """Region name -> where its curve came from, for the ledger's ``ci_source`` column;
        empty: every region on the fleet's own figures (a live source overrides this)."""
        return {}

    def steady(self, t0_s: float) -> tuple[float, list[float]] | None:
        """Each region's intensity from ``t0_s`` on, and the time until which all of them
        hold it (the next hour boundary in any region), when every source is hourly or
        constant; None otherwise. A round whose clients all finish before then has one
        intensity per region: the accounting then needs no per-client mean."""
        if self._stack is None:
            return None
        window = self._stack.window_at(t0_s)
        return window[1], window[3]

    def mean(
        self, region: np.ndarray, t0_s: np.ndarray | float, t1_s: np.ndarray | float
    ) -> np.ndarray:
        """Each client's mean intensity over [t0, t1] in its region (index into the sources);
        t0 or t1 may be one time for every client, ``region`` one region."""
        region = np.asarray(region, dtype=np.int64)
        t0 = np.asarray(t0_s, dtype=np.float64)
        t1 = np.asarray(t1_s, dtype=np.float64)
        if self._stack is not None:
            out = self._stack.mean(region, t0, t1)
            return out if out.shape == region.shape else np.broadcast_to(out, region.shape).copy()
        if region.ndim == 0:  # one region (the server's)
            return self._sources[int(region)].mean(t0, t1)
        t0, t1 = np.broadcast_to(t0, region.shape), np.broadcast_to(t1, region.shape)
        out = np.empty(len(region), dtype=np.float64)
        for r in np.unique(region):
            mask = region == r
            out[mask] = self._sources[int(r)].mean(t0[mask], t1[mask])
        return out


@dataclass(frozen=True)
class _HourlyStack:
    """Hourly-cycle and constant sources as arrays indexed by region: a step function of
    hourly values repeated every ``period`` hours (24 for a day profile, a year's hours for
    a yearly trace), integrated exactly, so an interval across hour boundaries (or the
    cycle's end) is weighted by the time on either side."""

    values: np.ndarray  # (regions, longest period), zero-padded
    cum: np.ndarray  # (regions, longest period + 1)
    start_local_h: np.ndarray  # (regions,)
    constant: np.ndarray  # (regions,) the value of a constant source, NaN for hourly ones
    period: np.ndarray  # (regions,) hours in each region's cycle
    # window_at's answer for the last time asked
    _window: list[Any] = field(default_factory=list, compare=False, repr=False)

    @classmethod
    def of(cls, sources: Sequence[CarbonIntensity]) -> _HourlyStack | None:
        if not sources or not all(
            isinstance(s, HourlyProfile | ConstantIntensity) for s in sources
        ):
            return None
        width = max([s.period_h for s in sources if isinstance(s, HourlyProfile)] or [24])
        values = np.zeros((len(sources), width))
        cum = np.zeros((len(sources), width + 1))
        start, constant, period = [], [], []
        for i, s in enumerate(sources):
            if isinstance(s, HourlyProfile):
                values[i, : s.period_h] = s.values
                cum[i, : s.period_h + 1] = s.cum
                start.append(s.start_local_h)
                constant.append(np.nan)
                period.append(s.period_h)
            else:
                start.append(0.0)
                constant.append(s.ci_g_per_kwh)
                period.append(24)
        return cls(values, cum, np.array(start), np.array(constant), np.array(period))

    def mean(self, region: np.ndarray, t0_s: np.ndarray, t1_s: np.ndarray) -> np.ndarray:
        if t0_s.ndim == 0 and t1_s.size:
            # One start for every client (a round's cohort): if every interval lies within
            # the hour that holds t0 in each region, each client's mean is its region's value
            # in that hour.
            now = self._hour_values(float(t0_s), float(t1_s.max()))
            if now is not None:
                return now[region]
            t0_s = np.broadcast_to(t0_s, np.shape(t1_s))
        start = self.start_local_h[region]
        u0 = start + t0_s / S_PER_HOUR
        u1 = start + t1_s / S_PER_HOUR
        const = self.constant[region]
        period = self.period[region]
        span = t1_s - t0_s
        hourly = np.where(
            span > 0,
            (self._integral(region, u1, period) - self._integral(region, u0, period))
            / np.where(span > 0, span, 1.0),
            self.values[region, np.floor(u0 % period).astype(np.int64) % period],
        )
        return np.where(np.isnan(const), hourly, const)

    def _hour_values(self, t0_s: float, t1_s: float) -> np.ndarray | None:
        """Each region's intensity over [t0, t1] if no region changes hour in it, else None."""
        window = self.window_at(t0_s)
        return window[2] if t1_s < window[1] else None

    def window_at(self, t0_s: float) -> list[Any]:
        """[from_s, to_s, values, values as a list]: the hour every region is in at
        ``t0_s``, over the span of the clock that all of them stay in it. Kept until a
        query leaves it: rounds come many to an hour."""
        window = self._window
        if not window or not window[0] <= t0_s < window[1]:
            hour0 = np.floor(self.start_local_h + t0_s / S_PER_HOUR)
            # the window: from the latest region's hour start to the earliest one's end
            lo_s = float(((hour0 - self.start_local_h) * S_PER_HOUR).max())
            hi_s = float(((hour0 + 1 - self.start_local_h) * S_PER_HOUR).min())
            now = self.values[np.arange(len(hour0)), hour0.astype(np.int64) % self.period]
            values = np.where(np.isnan(self.constant), now, self.constant)
            window[:] = [lo_s, hi_s, values, values.tolist()]
        return window

    def _integral(self, region: np.ndarray, u: np.ndarray, period: np.ndarray) -> np.ndarray:
        cycles = np.floor(u / period)
        h = u - cycles * period
        hi = np.minimum(np.floor(h).astype(np.int64), period - 1)
        value_hours = (
            cycles * self.cum[region, period]
            + self.cum[region, hi]
            + (h - hi) * self.values[region, hi]
        )
        return value_hours * S_PER_HOUR  # value-seconds, as the interval is in seconds
