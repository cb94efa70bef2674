"""Differential privacy in a run: the epsilon the ledger records each round equals an
independent computation with dp-accounting from the same inputs, the budget stops the run
before it is passed, a resumed run counts on exactly, and the config refuses what cannot
be honoured (robust strategies included)."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import dp_accounting
import numpy as np
import pytest
from dp_accounting import rdp

import greenfl
from greenfl.config import build_config
from greenfl.core.errors import ConfigError
from greenfl.factories import build_loop

ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)) + [128, 256, 512]


def _cfg(**privacy: object):
    return build_config(
        {
            "data": {"num_clients": 40},
            # batch 16 set here, not the digits dataset's default of 8
            "train": {"rounds": 4, "clients_per_round": 8, "local_epochs": 1, "batch_size": 16},
            "privacy": {"noise_multiplier": 1.1, "clip_norm": 1.0, **privacy},
            "report": {"html": False},
        }
    )


def _epsilons(out: Path) -> list[float]:
    conn = sqlite3.connect(out / "ledger.sqlite")
    return [e for (e,) in conn.execute("SELECT epsilon FROM rounds ORDER BY round")]


def _independent_central(rounds: int, q: float, sigma: float, delta: float) -> float:
    acct = rdp.RdpAccountant(ORDERS)
    event = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma))
    acct.compose(event, rounds)
    return acct.get_epsilon(delta)


def test_central_epsilon_per_round_equals_an_independent_computation(tmp_path: Path):
    greenfl.run(_cfg(mode="central"), tmp_path / "c")
    got = _epsilons(tmp_path / "c")
    # every client is always available: each round samples 8 of 40, q = 0.2
    expected = [_independent_central(r, 8 / 40, 1.1, 1e-5) for r in range(1, 5)]
    assert np.allclose(got, expected, rtol=0.01)
    assert all(b > a for a, b in zip(got, got[1:], strict=False))
    summary = json.loads((tmp_path / "c" / "summary.json").read_text())
    assert summary["privacy"] == {"epsilon": got[-1], "delta": 1e-5}
    conn = sqlite3.connect(tmp_path / "c" / "ledger.sqlite")
    clips = {c for (c,) in conn.execute("SELECT dp_clip_norm FROM rounds")}
    assert clips == {1.0}


def test_the_budget_stops_before_it_is_passed(tmp_path: Path):
    eps = [_independent_central(r, 8 / 40, 1.1, 1e-5) for r in range(1, 5)]
    budget = (eps[1] + eps[2]) / 2  # room for two rounds, not three
    res = greenfl.run(_cfg(mode="central", epsilon_budget=budget), tmp_path / "b")
    got = _epsilons(tmp_path / "b")
    assert len(got) == 2 and got[-1] <= budget
    assert "privacy_budget_spent" in res.stop_reason
    with pytest.raises(ConfigError, match="spent by the first round"):
        greenfl.run(_cfg(mode="central", epsilon_budget=eps[0] / 2), tmp_path / "x")


def test_local_epsilon_is_the_largest_client_epsilon(tmp_path: Path):
    greenfl.run(_cfg(mode="local"), tmp_path / "l")
    conn = sqlite3.connect(tmp_path / "l" / "ledger.sqlite")
    rows = conn.execute(
        "SELECT client_id, num_samples FROM client_rounds WHERE status = 'completed'"
    ).fetchall()
    per_client: dict[int, rdp.RdpAccountant] = {}
    for cid, n in rows:
        # DP-SGD: Poisson batches at rate batch / n, one epoch of ceil(n / batch) steps
        steps = math.ceil(n / 16)
        acct = per_client.setdefault(cid, rdp.RdpAccountant(ORDERS))
        q = min(1.0, 16 / n)
        acct.compose(
            dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(1.1)), steps
        )
    expected = max(a.get_epsilon(1e-5) for a in per_client.values())
    assert _epsilons(tmp_path / "l")[-1] == pytest.approx(expected, rel=0.01)


def test_a_resumed_private_run_counts_on_exactly(tmp_path: Path):
    cfg = _cfg(mode="central", adaptive_clip=True, clip_count_stddev=1.0)
    greenfl.run(cfg, tmp_path / "a")
    crashed = build_loop(cfg, tmp_path / "b")
    crashed.run_round()
    crashed.run_round()
    crashed.ledger.close()
    loop = build_loop(cfg, tmp_path / "b", resume=True)
    loop.run()
    loop.ledger.finish("completed", "done")
    assert _epsilons(tmp_path / "b") == _epsilons(tmp_path / "a")
    clips = "SELECT dp_clip_norm, accuracy FROM rounds ORDER BY round"
    a = sqlite3.connect(tmp_path / "a" / "ledger.sqlite").execute(clips).fetchall()
    b = sqlite3.connect(tmp_path / "b" / "ledger.sqlite").execute(clips).fetchall()
    assert a == b and len({c for c, _ in a}) > 1  # the adaptive bound moved, identically


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"privacy": {"epsilon_budget": 3.0}}, "needs privacy.mode"),
        ({"privacy": {"mode": "central", "noise_multiplier": 0.0}}, "noise_multiplier > 0"),
        ({"privacy": {"mode": "local"}, "engine": {"trainer": "vectorised"}}, "vectorised"),
        ({"privacy": {"mode": "central", "adaptive_clip": True}}, "must exceed"),
        ({"secagg": {"enabled": True}, "strategy": {"name": "median"}}, "only the sum"),
        ({"secagg": {"enabled": True}, "privacy": {"mode": "central"}}, "cannot clip"),
    ],
)
def test_the_config_refuses_what_cannot_be_honoured(settings: dict, message: str):
    with pytest.raises(ConfigError, match=message):
        build_config(settings)


def test_a_robust_strategy_that_cannot_tolerate_the_attack_is_refused(tmp_path: Path):
    cfg = build_config(
        {
            "data": {"num_clients": 40},
            "train": {"rounds": 1, "clients_per_round": 10},
            "strategy": {"name": "bulyan"},
            "attack": {"name": "sign_flip", "fraction": 0.2},
        }
    )
    # f = ceil(0.2 x 10) = 2 attackers expected per round; Bulyan needs n >= 4f + 3 = 11 for
    # f = 2, but f grows with the cohort (a share of 0.2): the smallest n with
    # (n - 3) // 4 >= ceil(0.2 n) is 15 (at 11, f = 3 and Bulyan tolerates 2)
    with pytest.raises(ConfigError, match=r"f=2 .* n=10 .*: with a share of 0.2 .* n >= 15"):
        greenfl.run(cfg, tmp_path / "r")
    krum = cfg.replace(**{"strategy.name": "krum"})  # Krum needs n >= 2f + 3 = 7
    greenfl.run(krum, tmp_path / "k")


def test_compare_with_audit_puts_epsilon_and_membership_auc_side_by_side(tmp_path: Path):
    import subprocess
    import sys

    for name, mode in (("plain", "none"), ("private", "central")):
        (tmp_path / f"{name}.toml").write_text(
            "[data]\nnum_clients = 20\n[train]\nrounds = 2\nclients_per_round = 5\n"
            f'[privacy]\nmode = "{mode}"\n[report]\nhtml = false\n'
        )
    out = tmp_path / "cmp"
    done = subprocess.run(
        [sys.executable, "-m", "greenfl", "compare", str(tmp_path / "plain.toml"),
         str(tmp_path / "private.toml"), "--seeds", "0", "--out", str(out), "--audit"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    runs = {c["name"]: c["runs"][0] for c in json.loads((out / "compare.json").read_text())[
        "configs"]}  # fmt: skip
    for name, run in runs.items():
        audit = json.loads((Path(run["out_dir"]) / "audit.json").read_text())
        assert run["membership_auc"] == audit["attacks"]["loss"]["auc"], name
        summary = json.loads((Path(run["out_dir"]) / "summary.json").read_text())
        assert run["epsilon"] == summary["privacy"]["epsilon"]
    assert runs["plain"]["epsilon"] is None and runs["private"]["epsilon"] > 0
    assert "membership AUC" in done.stdout and "epsilon (DP)" in done.stdout


def test_local_dp_instructions_travel_to_deployed_clients():
    from greenfl.core.messages import FitInstructions
    from greenfl.deploy.wire import instructions_from_pb, instructions_to_pb

    ins = FitInstructions(2, 8, 0.1, dp_noise_multiplier=1.3, dp_max_grad_norm=0.7)
    back = instructions_from_pb(instructions_to_pb(ins))
    assert (back.dp_noise_multiplier, back.dp_max_grad_norm) == (1.3, 0.7)
    assert back == ins


def test_the_report_shows_the_privacy_spent_and_the_attack(tmp_path: Path):
    from greenfl.report.headline import headline_metrics, summary_value
    from greenfl.report.run_data import open_run

    cfg = build_config(
        {
            "data": {"num_clients": 20},
            "train": {"rounds": 2, "clients_per_round": 5},
            "privacy": {"mode": "central"},
            "attack": {"name": "backdoor", "fraction": 0.1},
        }
    )
    greenfl.run(cfg, tmp_path / "r")
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    with open_run(tmp_path / "r") as run:
        metrics = {m.key: m for m in headline_metrics(run)}
    for key in ("epsilon", "attack", "backdoor_success"):
        m = metrics[key]
        assert m.value == summary_value(summary, m.summary_key)
    from greenfl.cli import main

    assert main(["report", str(tmp_path / "r")]) == 0
    html = (tmp_path / "r" / "report.html").read_text()
    assert f"epsilon {summary['privacy']['epsilon']:.3g}" in html
    assert "backdoor, 10%" in html
    plain = build_config({"data": {"num_clients": 20}, "train": {"rounds": 1}})
    greenfl.run(plain, tmp_path / "p")
    with open_run(tmp_path / "p") as run:
        keys = {m.key for m in headline_metrics(run)}
    assert not {"epsilon", "attack", "backdoor_success"} & keys
