"""Partial work (fleet.partial_work): late clients send the steps they could finish by the
deadline, weighed by samples x share of steps (FedProx); with "drop" they straggle."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import greenfl
from greenfl.clients.trainer import SequentialTrainer
from greenfl.clients.vectorised import VectorisedTrainer
from greenfl.config import RunConfig
from greenfl.core.messages import (
    ClientUpdate,
    FitInstructions,
    samples_processed,
    steps_within,
)
from greenfl.factories import build_model_for, dataset_for
from greenfl.ledger import read_ledger
from greenfl.models.flops import training_flops_per_sample
from greenfl.strategy.base import weighted_mean_delta
from tests.fleets import write_fleet
from tests.tolerance import SAME_UPDATE_REL, assert_close_to_scale

DEADLINE_S = 0.5
SLOW_FLOPS_PER_S = 1e6


def test_steps_within_inverts_samples_processed() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        n, e, b = int(rng.integers(1, 60)), int(rng.integers(1, 4)), int(rng.integers(1, 9))
        cap = int(rng.integers(0, 12))
        budget = float(rng.uniform(0, 3 * n * e))
        got = int(steps_within(np.array([budget]), np.array([n]), e, b, cap)[0])
        # brute force: the most steps whose samples stay within the budget
        full = e * math.ceil(n / b) if cap == 0 else min(e * math.ceil(n / b), cap)
        # a cap of 0 means "no cap", so 0 steps is spelt out
        processed = [0] + [int(samples_processed(n, e, b, s)) for s in range(1, full + 1)]
        want = max(s for s in range(full + 1) if processed[s] <= budget)
        assert got == want, (n, e, b, cap, budget)


def test_instructions_carry_a_cap_per_client() -> None:
    ins = FitInstructions(2, 4, 0.1).with_client_steps({7: 3})
    assert ins.for_client(7).max_steps == 3 and not ins.for_client(7).client_steps
    assert ins.for_client(8).max_steps == 0
    assert ins.steps_of([7, 8], np.array([20, 20])).tolist() == [3, 10]
    capped = FitInstructions(2, 4, 0.1, max_steps=2).with_client_steps({7: 3})
    assert capped.for_client(7).max_steps == 2  # never above the round's own cap


def test_both_trainers_train_exactly_the_capped_steps(tiny_config: RunConfig) -> None:
    ds = dataset_for(tiny_config.data, tiny_config.seed)
    model = build_model_for(tiny_config, ds)
    params = torch.cat([p.detach().flatten() for p in model.parameters()])
    ins = FitInstructions(1, 8, 0.1).with_client_steps({1: 2, 3: 1})
    seq = SequentialTrainer().train(model, params, ds, [0, 1, 3], ins, 1, 0)
    vec = VectorisedTrainer().train(model, params, ds, [0, 1, 3], ins, 1, 0)
    n0 = len(ds.client_data(0)[1])
    assert [r.steps for r in seq] == [math.ceil(n0 / 8), 2, 1]
    assert [r.samples_processed for r in seq] == [n0, 16, 8]
    for a, b in zip(seq, vec, strict=True):
        assert (a.steps, a.samples_processed) == (b.steps, b.samples_processed)
        # float32 sums in another order: equal on the scale of the update (tests/tolerance.py)
        assert_close_to_scale(b.delta, a.delta, SAME_UPDATE_REL, f"client {a.client_id}")


def test_partial_work_is_weighed_by_samples_and_steps() -> None:
    ups = [
        ClientUpdate(0, torch.tensor([1.0, 0.0]), 100),
        ClientUpdate(1, torch.tensor([0.0, 1.0]), 100, work_fraction=0.25),
        ClientUpdate(2, torch.tensor([2.0, 2.0]), 50, work_fraction=0.5),
    ]
    # weights 100, 25, 25 of 150
    want = torch.tensor([(100 * 1 + 25 * 2) / 150, (25 * 1 + 25 * 2) / 150])
    torch.testing.assert_close(weighted_mean_delta(ups), want)


def _fleet(path: Path) -> Path:
    return write_fleet(
        path,
        devices=[{"name": "fast", "flops_per_s": 1e9}, {"name": "slow", "flops_per_s": 1e6}],
        regions=[{"name": "R", "ci": 300.0}],
        entries=[
            {"device": "fast", "region": "R", "share": 0.5},
            {"device": "slow", "region": "R", "share": 0.5},
        ],
        server_region="R",
        server_mode="shared",
    )


@pytest.fixture
def straggler_config(tiny_config: RunConfig, tmp_path: Path) -> RunConfig:
    return tiny_config.replace(
        **{
            "fleet.catalog": str(_fleet(tmp_path / "fleet.toml")),
            "fleet.deadline_s": DEADLINE_S,
            "train.batch_size": 8,
            "report.html": False,
        }
    )


def test_aggregate_takes_the_steps_done_by_the_deadline(
    straggler_config: RunConfig, tmp_path: Path
) -> None:
    cfg = straggler_config.replace(**{"fleet.partial_work": "aggregate"})
    result = greenfl.run(cfg, tmp_path / "agg")
    led = read_ledger(tmp_path / "agg")
    fps = training_flops_per_sample(
        build_model_for(cfg, dataset_for(cfg.data, cfg.seed)), (64,), 10, cfg.train.batch_size
    )
    step_s = fps * cfg.train.batch_size / SLOW_FLOPS_PER_S
    slow = [r for r in led.client_rounds if r["device"] == "slow"]
    fast = [r for r in led.client_rounds if r["device"] == "fast"]
    assert slow and fast
    assert {r["status"] for r in slow} == {"partial"}
    assert {r["status"] for r in fast} == {"completed"}
    for r in slow:
        used_s = r["compute_s"] + r["comm_s"]
        assert used_s <= DEADLINE_S
        assert used_s + step_s > DEADLINE_S  # the most steps that fit: one more would not
        assert r["flops"] % (fps * cfg.train.batch_size) == pytest.approx(0.0, abs=1.0)
    for rnd in led.rounds:
        in_round = [r for r in led.client_rounds if r["round"] == rnd["round"]]
        assert rnd["completed"] == len(in_round)  # every update was aggregated
    assert result.summary["clients_completed"] == len(led.client_rounds)
    assert result.summary["clients_dropped"] == 0


def test_drop_wastes_the_stragglers_work(straggler_config: RunConfig, tmp_path: Path) -> None:
    greenfl.run(straggler_config, tmp_path / "drop")
    led = read_ledger(tmp_path / "drop")
    slow = [r for r in led.client_rounds if r["device"] == "slow"]
    assert {r["status"] for r in slow} == {"straggler"}
    # they worked until the deadline, and that energy is counted
    assert all(r["compute_s"] + r["comm_s"] == pytest.approx(DEADLINE_S) for r in slow)
    assert all(r["energy_compute_j"] > 0 for r in slow)
