"""The server's footprint is modelled from counted work: repeatable run to run, equal to
hand-computed FLOPs, seconds and joules, in shared and dedicated mode."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import greenfl
from greenfl.config import RunConfig, build_config
from greenfl.fleet.profiles import ServerProfile
from greenfl.strategy import make as make_strategy
from tests.fleets import write_fleet

# The quickstart's MLP on digits: 64 -> 64 -> 10.
PARAMS = 64 * 64 + 64 + 64 * 10 + 10  # 4,810
FORWARD_FLOPS = 2 * (64 * 64 + 64 * 10)  # per sample: the two matmuls
TEST_SAMPLES = 360  # digits' 20% central test split
SERVER_FLOPS_PER_S = 3.0e11  # the built-in server


def _rows(path: Path, table: str) -> list[dict[str, object]]:
    conn = sqlite3.connect(path / "ledger.sqlite")
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY rowid")]
    finally:
        conn.close()


def _repeatable(row: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in row.items() if not (k.startswith("wall_") or k.endswith("_utc"))}


@pytest.fixture
def cfg() -> RunConfig:
    return build_config(
        # one local epoch of batch 16 (set here: the digits dataset's defaults are 5 of 8)
        {
            "data": {"num_clients": 20},
            "train": {"rounds": 3, "clients_per_round": 5, "local_epochs": 1, "batch_size": 16},
        }
    )


def test_two_runs_give_identical_ledgers(cfg: RunConfig, tmp_path: Path) -> None:
    greenfl.run(cfg, tmp_path / "a")
    greenfl.run(cfg, tmp_path / "b")
    for table in ("rounds", "client_rounds"):
        a, b = _rows(tmp_path / "a", table), _rows(tmp_path / "b", table)
        assert len(a) == len(b) > 0
        assert [_repeatable(r) for r in a] == [_repeatable(r) for r in b], table
    assert _rows(tmp_path / "a", "rounds")[0]["server_measured"] == 0


def test_server_time_and_energy_equal_the_hand_count(cfg: RunConfig, tmp_path: Path) -> None:
    greenfl.run(cfg, tmp_path)
    for r in _rows(tmp_path, "rounds"):
        n = int(r["completed"])  # type: ignore[arg-type]
        flops = 2 * n * PARAMS + PARAMS + FORWARD_FLOPS * TEST_SAMPLES  # FedAvg + evaluation
        assert r["server_flops"] == flops
        assert r["server_s"] == pytest.approx(flops / SERVER_FLOPS_PER_S, rel=1e-12)
        # shared (the built-in's mode): only the 250 W - 90 W above idle, x PUE 1.58
        assert r["server_energy_j"] == pytest.approx((250 - 90) * r["server_s"] * 1.58)
        assert r["server_idle_energy_j"] == 0


def test_a_dedicated_server_is_charged_its_standby_over_the_whole_round(
    cfg: RunConfig, tmp_path: Path
) -> None:
    fleet = write_fleet(
        tmp_path / "fleet.toml",
        devices=[{"name": "phone"}],
        regions=[{"name": "XX", "ci": 100.0}],
        entries=[{"device": "phone", "region": "XX", "share": 1.0}],
        server_region="XX",
        server_idle_w=20.0,
        server_mode="dedicated",
    )
    greenfl.run(cfg.replace(**{"fleet.catalog": str(fleet)}), tmp_path / "run")
    for r in _rows(tmp_path / "run", "rounds"):
        server_s = float(r["server_s"])  # type: ignore[arg-type]
        standby_s = float(r["wait_s"]) + float(r["end_s"]) - float(r["start_s"]) - server_s  # type: ignore[arg-type]
        idle_j = 20.0 * standby_s * 1.5  # tests/fleets.py: power 100 W, PUE 1.5
        assert standby_s > 0
        assert r["server_idle_energy_j"] == pytest.approx(idle_j)
        assert r["server_energy_j"] == pytest.approx(idle_j + 100.0 * server_s * 1.5)
        assert r["server_carbon_g"] == pytest.approx(r["server_energy_j"] / 3.6e6 * 100.0)


def test_measured_mode_takes_host_time_and_says_so(cfg: RunConfig, tmp_path: Path) -> None:
    greenfl.run(cfg.replace(**{"engine.server_meter": "measured"}), tmp_path)
    rows = _rows(tmp_path, "rounds")
    assert {r["server_measured"] for r in rows} == {1}
    assert {r["server_flops"] for r in rows} == {0}


@pytest.mark.parametrize(
    ("name", "kwargs", "n", "expected"),
    [
        ("fedavg", {}, 3, 2 * 3 * 10 + 10),
        ("fedprox", {}, 3, 2 * 3 * 10 + 10),
        ("fedavgm", {}, 3, 2 * 3 * 10 + 10 + 3 * 10),
        ("fedadam", {}, 3, 70 + (8 + 3) * 10),
        ("fedadagrad", {}, 3, 70 + (8 + 1) * 10),
        ("fedyogi", {}, 3, 70 + (8 + 5) * 10),
        ("median", {}, 4, 4 * 2 * 10 + 3 * 10),  # 4 log2 4 = 8 comparisons per coordinate
        ("trimmed_mean", {"trim_fraction": 0.25}, 8, 8 * 3 * 10 + (4 + 1) * 10),
    ],
)
def test_aggregation_flops_by_hand(name: str, kwargs: dict, n: int, expected: int) -> None:
    assert make_strategy(name, **kwargs).aggregation_flops(n, 10) == expected


def test_server_profile_refuses_idle_above_active_and_unknown_modes() -> None:
    base = {"power_w": 100.0, "pue": 1.2, "region": "XX", "source": "t"}
    assert ServerProfile(**base).mode == "shared"
    with pytest.raises(ValueError, match="idle_power_w"):
        ServerProfile(**base, idle_power_w=200.0)
    with pytest.raises(ValueError, match="mode"):
        ServerProfile(**base, mode="owned")
    with pytest.raises(ValueError, match="flops_per_s"):
        ServerProfile(**base, flops_per_s=float("inf"))
