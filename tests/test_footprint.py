"""Golden footprint cases, computed by hand from the one-device fleet in conftest.py:
1 GFLOP/s at 2 W; up 8 / down 16 Mbit/s; radio 1 W; 0.01 kWh/GB; 400 g/kWh;
embodied 50 kg over 3 y x 25% active; server 100 W, PUE 1.5."""

import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from greenfl.footprint import (
    ConstantIntensity,
    HourlyProfile,
    NullMeter,
    RaplMeter,
    Trace,
    client_cost,
    embodied_carbon_g,
    operational_carbon_g,
    server_energy_j,
    truncate,
)

T0 = datetime(2026, 1, 15, 0, 0, tzinfo=timezone.utc)


def _cost(flops: float = 3e9, up: int = 1_000_000, down: int = 2_000_000):  # noqa: ANN202
    return client_cost(
        np.array([flops]), np.array([up]), np.array([down]), 1e9, 2.0, 8.0, 16.0, 1.0, 0.01
    )


def test_compute_time_and_energy() -> None:
    c = _cost()
    assert c.compute_s[0] == pytest.approx(3.0)  # 3e9 / 1e9
    assert c.energy_compute_j[0] == pytest.approx(6.0)  # 2 W x 3 s


def test_comm_time_and_energy_up_and_down_at_different_speeds() -> None:
    c = _cost()
    up_s = 1_000_000 * 8 / 8e6  # 1.0 s
    down_s = 2_000_000 * 8 / 16e6  # 1.0 s
    assert c.up_s[0] == pytest.approx(up_s) and c.down_s[0] == pytest.approx(down_s)
    assert c.comm_s[0] == pytest.approx(2.0)
    # radio 1 W x 2 s + 3e6 B / 1e9 x 0.01 kWh/GB x 3.6e6 J/kWh = 2 + 108
    assert c.energy_comm_j[0] == pytest.approx(2.0 + 108.0)


def test_operational_carbon() -> None:
    # (6 + 110) J / 3.6e6 x 400 g/kWh
    assert operational_carbon_g(116.0, 400.0) == pytest.approx(116.0 / 3.6e6 * 400)


def test_embodied_carbon() -> None:
    # 50 kg x 1000 x 5 s / (3 y x 8766 h x 3600 s x 0.25)
    expected = 50_000 * 5 / (3 * 8766 * 3600 * 0.25)
    assert embodied_carbon_g(5.0, 50.0, 3.0, 0.25) == pytest.approx(expected)


def test_server_energy_with_pue() -> None:
    assert server_energy_j(2.0, 100.0, 1.5, None) == pytest.approx(300.0)  # 100 W x 2 s x 1.5
    assert server_energy_j(2.0, 100.0, 1.5, measured_j=50.0) == pytest.approx(75.0)


def test_truncated_work_counts_only_what_ran() -> None:
    c = _cost()
    # phases: down 1 s, compute 3 s, up 1 s; stop after 2.5 s = all of down + 1.5 s compute
    cut, moved_down, moved_up = truncate(
        c,
        np.array([2.5]),
        np.array([1_000_000]),
        np.array([2_000_000]),
        np.array([2.0]),
        np.array([1.0]),
        np.array([0.01]),
    )
    assert cut.compute_s[0] == pytest.approx(1.5) and cut.energy_compute_j[0] == pytest.approx(3.0)
    assert moved_down[0] == 2_000_000 and moved_up[0] == 0
    assert cut.energy_comm_j[0] == pytest.approx(1.0 + 2e6 / 1e9 * 0.01 * 3.6e6)


def test_hourly_intensity_averaged_across_an_hour_boundary() -> None:
    profile = tuple(float(h * 10) for h in range(24))  # 00h: 0, 01h: 10, 02h: 20 ...
    src = HourlyProfile(profile, utc_offset_h=0.0, start_utc=T0)
    # 00:45 -> 01:15: 15 min at 0 and 15 min at 10 -> 5
    got = src.mean(np.array([2700.0]), np.array([4500.0]))
    assert got[0] == pytest.approx(5.0)
    # 00:30 -> 02:30: 30 min at 0, 60 at 10, 30 at 20 -> 10
    assert src.mean(np.array([1800.0]), np.array([9000.0]))[0] == pytest.approx(10.0)
    # the local offset shifts the curve: at UTC 00:30 in UTC+2 it is 02:30 local -> 20
    shifted = HourlyProfile(profile, utc_offset_h=2.0, start_utc=T0)
    assert shifted.mean(np.array([1800.0]), np.array([1800.0]))[0] == pytest.approx(20.0)
    # wraps past midnight: 23:30 -> 00:30 next day -> (230 + 0)/2
    assert src.mean(np.array([23.5 * 3600]), np.array([24.5 * 3600]))[0] == pytest.approx(115.0)


def test_trace_intensity_is_a_step_function(tmp_path: Path) -> None:
    p = tmp_path / "trace.csv"
    p.write_text(
        "timestamp,ci_g_per_kwh\n2026-01-15T00:00:00Z,100\n2026-01-15T01:00:00Z,300\n"
        "2026-01-15T02:00:00Z,50\n"
    )
    tr = Trace.from_csv(p, T0)
    assert tr.mean(np.array([1800.0]), np.array([5400.0]))[0] == pytest.approx(200.0)
    assert tr.mean(np.array([3600.0]), np.array([3600.0]))[0] == pytest.approx(300.0)
    assert tr.mean(np.array([9000.0]), np.array([20000.0]))[0] == pytest.approx(50.0)


def test_bad_trace_rows_name_the_line(tmp_path: Path) -> None:
    from greenfl.core.errors import FleetError

    p = tmp_path / "t.csv"
    p.write_text("timestamp,ci_g_per_kwh\n2026-01-15T00:00:00Z,abc\n")
    with pytest.raises(FleetError, match="t.csv:2"):
        Trace.from_csv(p, T0)


def test_constant_intensity() -> None:
    assert ConstantIntensity(42.0).mean(np.array([0.0, 5.0]), np.array([1.0, 5.0])).tolist() == [
        42.0,
        42.0,
    ]


def test_meters_degrade_gracefully(tmp_path: Path) -> None:
    assert RaplMeter.discover(tmp_path) is None  # no counters: no meter, no crash
    m = NullMeter()
    assert m.end(m.begin()).estimated
    dom = tmp_path / "intel-rapl:0"
    dom.mkdir()
    (dom / "energy_uj").write_text("1000000\n")
    (dom / "max_energy_range_uj").write_text("2000000\n")
    rapl = RaplMeter.discover(tmp_path)
    assert rapl is not None
    token = rapl.begin()
    (dom / "energy_uj").write_text("500000\n")  # wrapped: 1.0e6 -> 2.0e6 -> 0.5e6
    meas = rapl.end(token)
    assert not meas.estimated and math.isclose(meas.energy_j, 1.5)
