"""Issue 28's world, computed by hand: energy at the wall, the network's access and core
shares on two grids, connection set-up and round trips, the marginal network model, the
embodied allocation, production eligibility and its schedules, the round's phases, and
the planners' persistence forecast."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

import greenfl
from greenfl.config import RunConfig
from greenfl.core.errors import FleetError
from greenfl.fleet import load_fleet
from greenfl.fleet.eligibility import eligible_chance, production_fleet
from greenfl.footprint.forecast import PersistenceForecast
from greenfl.footprint.intensity import RegionalIntensity, Trace
from greenfl.footprint.model import client_operational_g, cost_from_rates
from greenfl.ledger import read_ledger
from greenfl.ledger.schema import migrate
from greenfl.report.run_data import open_run
from greenfl.report.run_report import render_run_report
from greenfl.scheduling.phases import PRODUCTION_TIMING, RoundTiming

J_PER_KWH = 3.6e6

FLEET = """
[[device]]
name = "phone"
flops_per_s = 1.0e9
active_power_w = 3.0
idle_power_w = 0.3
embodied_kg = 50.0
lifetime_years = 2.0
active_share = 0.25
charging_efficiency = 0.8
schedule = "{schedule}"
source = "test"

[[network]]
name = "home"
up_mbps = 4.0
down_mbps = 8.0
radio_power_w = 2.0
network_kwh_per_gb = 0.01
marginal_kwh_per_gb = 0.002
access_share = 0.75
setup_s = 0.5
rtt_ms = 100.0
source = "test"

[[network]]
name = "cell"
up_mbps = 4.0
down_mbps = 8.0
radio_power_w = 2.0
network_kwh_per_gb = 0.02
metered = true
source = "test"

[[region]]
name = "C"
ci_g_per_kwh = 100.0
source = "test"

[[region]]
name = "S"
ci_g_per_kwh = 400.0
source = "test"

[server]
power_w = 100.0
idle_power_w = 10.0
pue = 1.5
region = "S"
source = "test"

[[population]]
device = "phone"
network = "{network}"
region = "C"
share = 1.0
{extra}
"""


def _fleet(
    tmp_path: Path, network: str = "home", schedule: str = "always", extra: str = ""
) -> Path:
    path = tmp_path / "fleet.toml"
    path.write_text(FLEET.format(network=network, schedule=schedule, extra=extra))
    return path


def test_one_client_round_by_hand() -> None:
    """1 GFLOP on 1 GFLOP/s; 1 MB down at 8 Mbit/s after 0.5 s set-up and a 0.1 s round
    trip; 0.5 MB up at 4 Mbit/s after a round trip; a 5 s tail at 1 W."""
    cost = cost_from_rates(
        np.array([1e9]),
        np.array([500_000]),
        np.array([1_000_000]),
        1e9,
        3.0,
        8 / 4e6,
        8 / 8e6,
        2.0,
        0.01 / 1e9 * J_PER_KWH,
        5.0,
        1.0,
        0.5,
        0.1,
    )
    assert cost.compute_s[0] == pytest.approx(1.0)
    assert cost.down_s[0] == pytest.approx(1.0 + 0.5 + 0.1)
    assert cost.up_s[0] == pytest.approx(1.0 + 0.1)
    network_j = 1.5e6 / 1e9 * 0.01 * J_PER_KWH  # 54 J
    radio_j = 2.0 * (1.6 + 1.1)  # 5.4 J
    tail_j = 1.0 * (min(5.0, 1.0) + 5.0)  # one burst: the upload follows within the timer
    assert cost.energy_network_j[0] == pytest.approx(network_j)
    assert cost.energy_comm_j[0] == pytest.approx(radio_j + network_j + tail_j)
    device_j = 3.0 + radio_j + tail_j
    assert cost.device_j[0] == pytest.approx(device_j)
    wall_j = device_j / 0.8
    carbon = client_operational_g(wall_j, network_j, 0.75, 100.0, 400.0)
    expected = (wall_j + 0.75 * network_j) / J_PER_KWH * 100 + 0.25 * network_j / J_PER_KWH * 400
    assert float(carbon) == pytest.approx(expected)


def _cfg(tiny_config: RunConfig, fleet: Path, **extra: object) -> RunConfig:
    return tiny_config.replace(
        **{"fleet.catalog": str(fleet), "train.rounds": 2, "report.html": False, **extra}
    )


def test_the_ledger_keeps_device_and_wall_energy_and_splits_the_network(
    tiny_config: RunConfig, tmp_path: Path
) -> None:
    greenfl.run(_cfg(tiny_config, _fleet(tmp_path)), tmp_path / "run")
    rows = read_ledger(tmp_path / "run").client_rounds
    assert rows
    for r in rows:
        network_j = (r["bytes_up"] + r["bytes_down"]) / 1e9 * 0.01 * J_PER_KWH
        assert r["energy_network_j"] == pytest.approx(network_j)
        device_j = r["energy_compute_j"] + r["energy_comm_j"] - network_j
        assert r["wall_energy_j"] == pytest.approx(device_j / 0.8)
        # set-up once and a round trip before each transfer, with the radio on
        transfer_s = r["bytes_down"] * 8 / 8e6 + r["bytes_up"] * 8 / 4e6
        assert r["comm_s"] == pytest.approx(transfer_s + 0.5 + 2 * 0.1)
        expected_g = (r["wall_energy_j"] + 0.75 * network_j) / J_PER_KWH * 100.0 + (
            0.25 * network_j / J_PER_KWH * 400.0
        )
        assert r["carbon_operational_g"] == pytest.approx(expected_g)
        active_s = r["compute_s"] + r["comm_s"]
        per_s = 50_000 / (2 * 8766 * 3600 * 0.25)
        assert r["carbon_embodied_g"] == pytest.approx(per_s * active_s)


def test_marginal_network_and_lifetime_allocation(tiny_config: RunConfig, tmp_path: Path) -> None:
    fleet = _fleet(tmp_path)
    greenfl.run(_cfg(tiny_config, fleet), tmp_path / "avg")
    greenfl.run(
        _cfg(
            tiny_config,
            fleet,
            **{"fleet.network_energy": "marginal", "fleet.embodied_allocation": "lifetime"},
        ),
        tmp_path / "marg",
    )
    avg = read_ledger(tmp_path / "avg").client_rounds
    marg = read_ledger(tmp_path / "marg").client_rounds
    assert [r["client_id"] for r in avg] == [r["client_id"] for r in marg]
    for a, m in zip(avg, marg, strict=True):
        assert m["energy_network_j"] == pytest.approx(a["energy_network_j"] * 0.002 / 0.01)
        # over the whole lifetime, not its active quarter
        assert m["carbon_embodied_g"] == pytest.approx(a["carbon_embodied_g"] * 0.25)


def test_production_moves_metered_entries_onto_their_home_network(tmp_path: Path) -> None:
    builtin = load_fleet()
    prod = production_fleet(builtin)
    metered = {n.name for n in builtin.networks if n.metered}
    assert metered == {"lte", "5g"}
    assert not any(p.network in metered for p in prod.population)
    assert [p.share for p in prod.population] == [p.share for p in builtin.population]
    assert [(p.device, p.region) for p in prod.population] == [
        (p.device, p.region) for p in builtin.population
    ]
    # a declared home network wins; a metered one is refused when the file is read
    fleet = load_fleet(_fleet(tmp_path, network="cell", extra='home_network = "home"'))
    assert production_fleet(fleet).population[0].network == "home"
    with pytest.raises(FleetError, match=r"home_network: 'cell' is metered"):
        load_fleet(_fleet(tmp_path, network="cell", extra='home_network = "cell"'))


def test_schedules_by_local_hour_and_bad_schedules_refused(tmp_path: Path) -> None:
    fleet = load_fleet()
    phone = fleet.device_index("phone-mid")
    de, jp = fleet.region_index("DE"), fleet.region_index("JP")
    # 02:00 UTC is 03:00 in DE (UTC+1, the schedule's peak) and 11:00 in JP (UTC+9)
    chance = eligible_chance(fleet, datetime(2026, 1, 15, 2, 0, tzinfo=timezone.utc))
    assert chance[phone, de] == pytest.approx(0.4)
    shape = (1 + np.cos(2 * np.pi * (11 - 3) / 24)) / 2
    assert chance[phone, jp] == pytest.approx(0.1 + 0.3 * shape, abs=1e-3)
    rpi = fleet.device_index("rpi4")
    assert (chance[rpi] == 1.0).all()
    with pytest.raises(FleetError, match=r"device\[0\]\.schedule: unknown schedule 'night'"):
        load_fleet(_fleet(tmp_path, schedule="night"))
    bad = FLEET.format(network="home", schedule="always", extra="") + (
        '\n[[schedule]]\nname = "x"\nhourly = [0.5, 0.5]\nsource = "test"\n'
    )
    (tmp_path / "bad.toml").write_text(bad)
    with pytest.raises(FleetError, match="hourly needs 24 values"):
        load_fleet(tmp_path / "bad.toml")


def test_selection_phase_by_hand() -> None:
    t = RoundTiming(checkin_window_s=60, checkin_interval_s=600, selection_timeout_s=900)
    assert t.checkin_s(4, 80) == 60.0  # pace steering spreads 4 check-ins over the window
    assert t.checkin_s(4, 20) == pytest.approx(4 * 600 / 20)  # few eligible: slower
    assert t.checkin_s(4, 2) == 900.0  # the goal is out of reach: the timeout
    assert t.checkin_s(4, 0) == 900.0
    assert t.checkin_s(0, 10) == 0.0
    assert RoundTiming().checkin_s(10, 100) == 0.0


def test_production_rounds_take_their_phases(tiny_config: RunConfig, tmp_path: Path) -> None:
    """Every client eligible (schedule "always"), 20 of them, 5 a round (no over-selection):
    the check-in takes max(60, 5 x 600 / 20) = 150 s, then 5 s of configuration."""
    cfg = _cfg(tiny_config, _fleet(tmp_path), **{"fleet.eligibility": "production"})
    res = greenfl.run(cfg, tmp_path / "run")
    led = read_ledger(tmp_path / "run")
    assert PRODUCTION_TIMING.checkin_interval_s == 600 and PRODUCTION_TIMING.configuration_s == 5
    for r in led.rounds:
        assert r["checkin_s"] == pytest.approx(150.0)
        assert r["config_s"] == pytest.approx(5.0)
        assert r["end_s"] - r["start_s"] == pytest.approx(
            r["checkin_s"] + r["config_s"] + r["report_window_s"] + r["server_s"]
        )
        round_rows = [c for c in led.client_rounds if c["round"] == r["round"]]
        assert r["report_window_s"] == pytest.approx(
            max(c["compute_s"] + c["comm_s"] for c in round_rows)
        )
        # the clients' work starts after the phases
        assert all(c["start_s"] == pytest.approx(r["start_s"] + 155.0) for c in round_rows)
    assert res.summary["sim_time_s"] == pytest.approx(led.rounds[-1]["end_s"])


def test_any_eligibility_has_no_phases(tiny_config: RunConfig, tmp_path: Path) -> None:
    greenfl.run(_cfg(tiny_config, _fleet(tmp_path)), tmp_path / "run")
    for r in read_ledger(tmp_path / "run").rounds:
        assert r["checkin_s"] == 0.0 and r["config_s"] == 0.0
        assert r["report_window_s"] > 0


def test_persistence_forecast_is_yesterdays_curve() -> None:
    start = datetime(2026, 1, 15, tzinfo=timezone.utc)
    stamps = [(start + timedelta(hours=h)).timestamp() for h in range(-24, 24)]
    values = [float(100 + h) for h in range(-24, 24)]  # every hour differs
    real = RegionalIntensity([Trace(np.array(stamps), np.array(values), start)])
    forecast = PersistenceForecast(real, 24.0)
    t0, t1 = np.array([3 * 3600.0]), np.array([4 * 3600.0])
    assert real.mean(np.array([0]), t0, t1)[0] == pytest.approx(103.0)
    assert forecast.mean(np.array([0]), t0, t1)[0] == pytest.approx(103.0 - 24)
    assert forecast[0].mean(t0, t1)[0] == pytest.approx(79.0)


def test_a_version_2_ledger_gains_the_new_columns(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "old.sqlite")
    conn.execute("CREATE TABLE rounds (round INTEGER PRIMARY KEY, start_s REAL)")
    conn.execute("CREATE TABLE client_rounds (round INTEGER, client_id INTEGER)")
    conn.execute("INSERT INTO client_rounds VALUES (1, 7)")
    migrate(conn)
    cols = {r[1] for r in conn.execute("PRAGMA table_info(client_rounds)")}
    assert {"wall_energy_j", "energy_network_j"} <= cols
    rcols = {r[1] for r in conn.execute("PRAGMA table_info(rounds)")}
    assert {"checkin_s", "config_s", "report_window_s"} <= rcols
    assert conn.execute("SELECT wall_energy_j FROM client_rounds").fetchone() == (None,)


def test_the_report_says_the_carbon_uses_wall_energy(
    tiny_config: RunConfig, tmp_path: Path
) -> None:
    greenfl.run(_cfg(tiny_config, _fleet(tmp_path)), tmp_path / "run")
    rows = read_ledger(tmp_path / "run").client_rounds
    wall_j = sum(r["wall_energy_j"] for r in rows)
    with open_run(tmp_path / "run") as run:
        page = render_run_report(run)
    assert "energy at the wall" in page
    assert f"{wall_j:.4g} J (charging losses included)" in page
