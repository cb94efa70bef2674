"""What a new user meets in the first hour: a CLI that answers at once, mistakes named
where they were made with the likely fix, a dataset switched by name that brings its own
round, progress while a round runs, and threads chosen on purpose."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import greenfl
from greenfl.cli import main
from greenfl.core.errors import ConfigError

PROBE = (
    "import sys; from greenfl.cli import main; main({args!r}); "
    "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)"
)


def _probe(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", PROBE.format(args=args)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [["--help"], ["-h"], ["--version"], ["run", "-h"], ["run", "--bogus"],
     ["run", "--set", "trian.rounds=3"], ["run", "--set", "strategy.mu=0.1"]],
)  # fmt: skip
def test_help_version_and_usage_errors_never_import_torch(args: list[str]) -> None:
    proc = _probe(args)
    assert proc.stderr.strip().endswith("NO-TORCH"), proc.stderr[-2000:]


def test_import_greenfl_does_not_import_torch() -> None:
    code = "import sys, greenfl; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    assert out.strip() == "False"
    assert callable(greenfl.run)  # the names are there, imported on use


def test_dash_h_is_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-h"]) == 0
    assert "Usage: greenfl" in capsys.readouterr().out
    assert main(["run", "-h"]) == 0
    assert "--set" in capsys.readouterr().out


def test_a_set_typo_is_blamed_on_the_set_with_the_likely_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "my.toml"
    cfg.write_text("[train]\nrounds = 2\n")
    assert main(["run", str(cfg), "--set", "train.rouns=3", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err == "error: --set train.rouns=3: train.rouns: unknown key (did you mean 'rounds'?)\n"
    # a typo in the file itself is the file's
    cfg.write_text("[trian]\nrounds = 2\n")
    assert main(["run", str(cfg), "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {cfg}: trian: unknown key (did you mean 'train'?)")


def test_a_bad_value_is_blamed_on_the_set_that_brought_it() -> None:
    with pytest.raises(ConfigError) as info:
        greenfl.load_config(None, ["train.lr=-1"])
    assert str(info.value).startswith("--set train.lr=-1: train.lr: Input should be greater")


@pytest.mark.parametrize(
    ("key", "new"),
    [("strategy.mu", "strategy.params.mu"), ("model.hidden", "model.params.hidden"),
     ("selection.fedzero_min_epochs", "selection.params.min_epochs"),
     ("compression.topk_ratio", "compression.params.ratio"),
     ("data.samples_per_client", "data.params.samples_per_client"),
     ("engine.vectorised_threads", "engine.threads")],
)  # fmt: skip
def test_a_removed_flat_field_names_its_new_place(key: str, new: str) -> None:
    with pytest.raises(ConfigError) as info:
        greenfl.load_config(None, [f"{key}=1"])
    assert f"{key} has moved: set {new}" in str(info.value)
    section, field = key.split(".")
    with pytest.raises(ConfigError) as info:  # from a file too
        greenfl.build_config({section: {field: 1}}, source="old.toml")
    assert str(info.value).startswith(f"old.toml: {key} has moved: set {new}")


def test_a_dataset_by_name_brings_its_own_round_unless_the_config_sets_one() -> None:
    digits = greenfl.load_config(None)
    assert (digits.train.local_epochs, digits.train.batch_size) == (5, 8)
    shk = greenfl.load_config(None, ["data.dataset=shakespeare"])
    t = shk.train
    assert (t.local_epochs, t.max_local_steps, t.batch_size, t.lr) == (1, 20, 10, 0.8)
    assert (shk.eval.every, shk.eval.clients, shk.eval.max_samples) == (5, 20, 200)
    mine = greenfl.load_config(None, ["data.dataset=shakespeare", "train.batch_size=4"])
    assert mine.train.batch_size == 4 and mine.train.max_local_steps == 20
    # replace() re-derives what the dataset filled in, from the dataset it names
    again = shk.replace(**{"data.dataset": "digits"})
    assert (again.train.local_epochs, again.train.max_local_steps) == (5, 0)


def test_a_dataset_object_must_match_data_num_clients() -> None:
    from greenfl.data.base import ArrayDataset
    from greenfl.data.partition import make_partition

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    parts = make_partition("iid", y[:150], 20, 0, 0.5, 2)
    ds = ArrayDataset("tiny", x[:150], y[:150], x[150:], y[150:], parts, (4,), 3)
    with pytest.raises(ConfigError, match="data.num_clients = 100, but the dataset given holds "
                                          "20 clients: set data.num_clients = 20"):  # fmt: skip
        greenfl.run(None, None, dataset=ds, overrides=["train.rounds=1"])
    res = greenfl.run(None, None, dataset=ds, overrides=["data.num_clients=20", "train.rounds=1",
                                                         "train.clients_per_round=5"])  # fmt: skip
    assert res.summary["rounds_completed"] == 1


@pytest.mark.parametrize("clients", [20, 40])
def test_trimmed_mean_under_a_share_of_attackers_says_what_to_change(clients: int) -> None:
    """20% attackers: f = ceil(0.2 n) while the trim per side is max(1, int(0.1 n)), so no
    larger cohort ever tolerates them; the fix is the trim, and the message says so (it
    used to ask for n >= 40 at n = 20 and n >= 80 at n = 40)."""
    from greenfl.factories import run_strategy_for

    cfg = greenfl.load_config(None, [
        "strategy.name=trimmed_mean", "attack.name=sign_flip", "attack.fraction=0.2",
        f"data.num_clients={clients * 2}", f"train.clients_per_round={clients}",
    ])  # fmt: skip
    with pytest.raises(ConfigError) as info:
        run_strategy_for(cfg)
    msg = str(info.value)
    f = math.ceil(0.2 * clients)
    assert f"cannot tolerate f={f} Byzantine updates among n={clients}" in msg
    assert "no larger cohort will do" in msg and "needs n >=" not in msg
    assert "trim_fraction = 0.1) must reach the attackers' share: set it to at least 0.2" in msg
    fixed = cfg.replace(**{"strategy.params.trim_fraction": 0.2})
    run_strategy_for(fixed)  # tolerated now: int(0.2 n) = ceil(0.2 n) for these n


def test_progress_inside_a_round_as_plain_lines_when_not_a_terminal() -> None:
    from greenfl.cli.progress import PlainProgress
    from greenfl.clients.transport import FitProgress

    out = io.StringIO()
    seen = []
    shown = PlainProgress(rounds=2, out=out, every_s=0.0)
    res = greenfl.run(None, None, overrides=["train.rounds=2", "engine.trainer=sequential"],
                      on_round=shown.on_round,
                      on_progress=lambda p: (seen.append(p), shown.on_progress(p)))  # fmt: skip
    assert res.summary["rounds_completed"] == 2
    lines = out.getvalue().splitlines()
    assert any(line.startswith("round 1/2: clients ") and "local steps" in line for line in lines)
    assert [line.split(":")[0] for line in lines if "acc " in line] == ["round 1/2", "round 2/2"]
    # the counts rise to the cohort: 10 clients, each its local steps
    last = [p for p in seen if p.clients_done == 10]
    assert last and isinstance(last[0], FitProgress) and last[0].clients == 10
    assert last[-1].steps_done > 0


def test_threads_are_chosen_by_model_size_and_recorded(tmp_path: Path) -> None:
    import sqlite3

    from torch import nn

    from greenfl.factories.world import SMALL_MODEL_PARAMS, threads_for, usable_cores

    cfg = greenfl.load_config(None)
    assert threads_for(cfg, nn.Linear(10, 10)) == 1
    big = nn.Linear(SMALL_MODEL_PARAMS, 2)  # 2M + 2 parameters
    assert threads_for(cfg, big) == max(1, min(usable_cores(), 4))
    assert threads_for(cfg.replace(**{"engine.threads": 3}), nn.Linear(10, 10)) == 3
    greenfl.run(cfg, tmp_path / "r", overrides=["train.rounds=1", "report.html=false"])
    conn = sqlite3.connect(tmp_path / "r" / "ledger.sqlite")
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    conn.close()
    assert meta["threads"] == "1"
    assert json.loads(meta["policies"])["strategy"] == {"name": "fedavg", "params": {}}


def test_callback_metrics_are_kept_in_the_record() -> None:
    def watch(record, view):
        return False, {"aggregated": int(len(view.aggregated_ids))}

    res = greenfl.run(None, None, overrides=["train.rounds=2"], callbacks=[watch])
    assert [r.metrics for r in res.history] == [{"aggregated": 10}, {"aggregated": 10}]
