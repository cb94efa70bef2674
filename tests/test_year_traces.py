"""The built-in DE, GB and FR traces: a year of real hourly intensity, repeated every year
from the run's own date and hour, checked against the CSV rows themselves."""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from greenfl.accounting.sources import GridChoice, intensity_sources, source_kind
from greenfl.core.errors import FleetError
from greenfl.fleet.catalog import load_fleet
from greenfl.footprint.intensity import HourlyProfile, yearly_trace

TRACES = Path(str(resources.files("greenfl.fleet").joinpath("catalog/traces")))


def _row(region: str, stamp: str) -> float:
    with open(TRACES / f"{region}-2020.csv") as fh:
        for t, v in csv.reader(fh):
            if t == stamp:
                return float(v)
    raise AssertionError(f"no row {stamp}")


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def test_a_run_starts_at_its_own_date_and_hour_of_2020() -> None:
    p = yearly_trace(TRACES / "DE-2020.csv", 2020, _utc(2026, 7, 3, 14))
    # the first half hour of the run: 2020-07-03 14:00 UTC's value
    got = p.mean(np.array([0.0]), np.array([1800.0]))[0]
    assert got == pytest.approx(_row("DE", "2020-07-03T14:00:00Z"))
    # 14:30-15:30 is half of each hour
    both = (_row("DE", "2020-07-03T14:00:00Z") + _row("DE", "2020-07-03T15:00:00Z")) / 2
    assert p.mean(np.array([1800.0]), np.array([5400.0]))[0] == pytest.approx(both)


def test_the_trace_wraps_at_the_year_end() -> None:
    p = yearly_trace(TRACES / "GB-2020.csv", 2020, _utc(2026, 12, 31, 23))
    wrap = (_row("GB", "2020-12-31T23:00:00Z") + _row("GB", "2020-01-01T00:00:00Z")) / 2
    assert p.mean(np.array([0.0]), np.array([7200.0]))[0] == pytest.approx(wrap)
    # a whole year later, the same hour again
    year_s = 8784 * 3600.0
    assert p.mean(np.array([year_s]), np.array([year_s]))[0] == pytest.approx(
        _row("GB", "2020-12-31T23:00:00Z")
    )


def test_the_builtin_fleet_uses_the_traces_in_auto_mode() -> None:
    fleet = load_fleet()
    start = datetime(2026, 3, 10, 6, 0, tzinfo=timezone.utc)
    cfg = GridChoice()
    sources = intensity_sources(fleet, cfg, start)
    for name in ("DE", "GB", "FR"):
        src = sources[fleet.region_index(name)]
        assert isinstance(src, HourlyProfile) and src.period_h == 8784
        assert src.mean(np.array([0.0]), np.array([0.0]))[0] == pytest.approx(
            _row(name, "2020-03-10T06:00:00Z")
        )
        assert source_kind(fleet.regions[fleet.region_index(name)], cfg).startswith("2020")
    assert source_kind(fleet.regions[fleet.region_index("US")], cfg) == "annual mean"
    # many regions at once (the accounting's vectorised pass) agree with each alone
    regions = np.arange(len(fleet.regions))
    together = sources.mean(regions, 100.0, 5000.0)
    alone = [float(sources[i].mean(np.array([100.0]), np.array([5000.0]))[0]) for i in regions]
    assert together == pytest.approx(alone)


def test_a_trace_missing_an_hour_is_refused_with_its_file(tmp_path: Path) -> None:
    path = tmp_path / "gap.csv"
    lines = [f"2021-01-01T{h:02d}:00:00Z,100" for h in range(24) if h != 5]
    path.write_text("timestamp,ci_g_per_kwh\n" + "\n".join(lines) + "\n")
    with pytest.raises(FleetError, match="gap.csv.*one row per hour of 2021"):
        yearly_trace(path, 2021, _utc(2026, 1, 1))


def test_trace_year_without_a_trace_is_refused() -> None:
    from greenfl.fleet.profiles import Region

    with pytest.raises(ValueError, match="trace_year"):
        Region(name="XX", ci_g_per_kwh=100.0, source="t", trace_year=2020)
