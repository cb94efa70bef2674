"""greenfl tune: the grid, its ranking, tune.csv and best.toml."""

from __future__ import annotations

import csv
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from greenfl.analysis.tune import parse_grid, split_values, tune
from greenfl.cli import main
from greenfl.config import RunConfig, load_config
from greenfl.core.errors import ConfigError

BASE = """
seed = 0
[data]
num_clients = 20
[model.params]
hidden = [32]
[train]
rounds = 2
clients_per_round = 4
[stop]
target_accuracy = 0.15
"""


@pytest.fixture
def base(tmp_path: Path) -> Path:
    p = tmp_path / "base.toml"
    p.write_text(textwrap.dedent(BASE))
    return p


def _fake_run(cfg: RunConfig, out: Path) -> dict[str, Any]:
    """A summary whose carbon is a known function of the point and seed: epochs 2 with
    batch 8 is cheapest on average; epochs 1 never reaches the target at seed 1."""
    t = cfg.train
    g = {(1, 8): 3.0, (1, 16): 2.0, (2, 8): 1.0, (2, 16): 4.0}[(t.local_epochs, t.batch_size)]
    reached = not (t.local_epochs == 1 and cfg.seed == 1)
    out.mkdir(parents=True)
    return {
        "final_accuracy": 0.5, "rounds_completed": 2, "rounds_to_target": 2 if reached else None,
        "sim_time_s": 1.0, "energy_j": {"total": 3.6e6},
        "carbon_g": {"operational": g, "embodied": 0.0, "total": g},
        "carbon_g_to_target": g + cfg.seed if reached else None,
    }  # fmt: skip


def test_ranks_by_seeds_reached_then_mean(base: Path, tmp_path: Path) -> None:
    points = tune(
        base, ["train.local_epochs=1,2", "train.batch_size=8,16"], [0, 1],
        "carbon_g_to_target", tmp_path / "t", run_fn=_fake_run,
    )  # fmt: skip
    labels = [p.label() for p in points]
    # (2, 8): 1.0 and 2.0 -> 1.5; (2, 16): 4.5; then the points that missed seed 1
    # ordered by their mean over the seeds that reached: (1, 16) 2.0 before (1, 8) 3.0.
    assert labels == [
        "train.local_epochs=2 train.batch_size=8",
        "train.local_epochs=2 train.batch_size=16",
        "train.local_epochs=1 train.batch_size=16",
        "train.local_epochs=1 train.batch_size=8",
    ]
    assert points[0].mean == pytest.approx(1.5)
    rows = list(csv.DictReader((tmp_path / "t" / "tune.csv").open()))
    assert [r["rank"] for r in rows] == ["1", "2", "3", "4"]
    assert rows[0]["train.local_epochs"] == "2" and rows[0]["train.batch_size"] == "8"
    assert rows[2]["seeds_reached"] == "1/2" and rows[2]["carbon_g_to_target_seed1"] == ""
    best = load_config(tmp_path / "t" / "best.toml")
    assert (best.train.local_epochs, best.train.batch_size) == (2, 8)
    # the base file's keys
    assert best.model.params == {"hidden": [32]} and best.data.num_clients == 20


def test_grid_values_keep_lists_whole() -> None:
    assert split_values("[64, 64],[32],16") == ["[64, 64]", "[32]", "16"]
    assert split_values('"a,b",c') == ['"a,b"', "c"]
    with pytest.raises(ConfigError, match="twice"):
        parse_grid(["train.lr=0.1", "train.lr=0.2"])
    with pytest.raises(ConfigError, match="KEY=V1,V2"):
        parse_grid(["train.lr="])


def test_a_bad_point_fails_before_any_run(base: Path, tmp_path: Path) -> None:
    calls: list[int] = []

    def run_fn(cfg: RunConfig, out: Path) -> dict[str, Any]:
        calls.append(1)
        return _fake_run(cfg, out)

    with pytest.raises(ConfigError, match="local_epochs"):
        tune(base, ["train.local_epochs=1,0"], [0], "carbon_g_to_target", tmp_path / "t",
             run_fn=run_fn)  # fmt: skip
    assert calls == []


def test_cli_tunes_real_runs(base: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "tuned"
    rc = main(["tune", str(base), "--grid", "train.clients_per_round=2,4", "--seeds", "0",
               "--metric", "carbon_total_g", "--out", str(out)])  # fmt: skip
    assert rc == 0
    rows = list(csv.DictReader((out / "tune.csv").open()))
    assert len(rows) == 2
    # The ranking matches the runs' own summaries.
    per_point = {}
    for k in (2, 4):
        i = 0 if k == 2 else 1
        s = json.loads((out / "runs" / f"p{i:03d}-seed0" / "summary.json").read_text())
        per_point[str(k)] = s["carbon_g"]["total"]
    ranked = [r["train.clients_per_round"] for r in rows]
    assert ranked[0] == min(per_point, key=per_point.__getitem__)
    assert float(rows[0]["carbon_total_g_mean"]) == pytest.approx(min(per_point.values()))
    best = load_config(out / "best.toml")
    assert str(best.train.clients_per_round) == ranked[0]
    assert "tune.csv" in capsys.readouterr().err
    assert main(["tune", str(base), "--grid", "train.nope=1,2", "--out", str(out)]) == 2
