"""Simulated attacks: who is malicious, what each attack does to data and updates (values
worked out by hand), and that the ledger and summary.json record them while the strategy
never sees who lied."""

from __future__ import annotations

import json
import math
import sqlite3

import numpy as np
import pytest
import torch
from scipy.stats import norm
from torch import nn

from greenfl.api import run
from greenfl.attacks import (
    PoisonedDataset,
    UpdateAttack,
    alie_z,
    backdoor_success,
    malicious_clients,
    stamp_trigger,
)
from greenfl.clients.attacking import AttackingTransport
from greenfl.clients.transport import Completion, Task, Transport
from greenfl.config import build_config
from greenfl.core.errors import ConfigError
from greenfl.core.messages import ClientReport, FitInstructions
from greenfl.data.base import ArrayDataset, Partition


def test_malicious_clients_are_a_seeded_share():
    a = malicious_clients(100, 0.2, seed=3)
    assert len(a) == 20 and len(set(a.tolist())) == 20
    assert np.all(np.diff(a) > 0) and a.min() >= 0 and a.max() < 100
    assert np.array_equal(a, malicious_clients(100, 0.2, seed=3))
    assert not np.array_equal(a, malicious_clients(100, 0.2, seed=4))
    assert len(malicious_clients(7, 0.1, seed=0)) == 1  # round(0.7) = 1
    assert len(malicious_clients(100, 0.0, seed=0)) == 0


def test_sign_flip_scaling_and_noise_by_hand():
    d = torch.tensor([1.0, -2.0, 0.5])
    honest = {9: torch.zeros(3)}
    assert torch.equal(UpdateAttack("sign_flip", 2.0, 0).apply(1, {4: d}, honest)[4],
                       torch.tensor([-2.0, 4.0, -1.0]))  # fmt: skip
    assert torch.equal(UpdateAttack("scaling", 10.0, 0).apply(1, {4: d}, honest)[4],
                       torch.tensor([10.0, -20.0, 5.0]))  # fmt: skip
    big = torch.zeros(200_000)
    noisy = UpdateAttack("noise", 3.0, seed=5).apply(2, {4: big}, honest)[4]
    assert abs(float(noisy.std()) - 3.0) < 0.03 and abs(float(noisy.mean())) < 0.03
    again = UpdateAttack("noise", 3.0, seed=5).apply(2, {4: big}, honest)[4]
    assert torch.equal(noisy, again)
    other_round = UpdateAttack("noise", 3.0, seed=5).apply(3, {4: big}, honest)[4]
    assert not torch.equal(noisy, other_round)


def test_alie_z_matches_the_paper_formula():
    # n = 10 updates, m = 2 attackers: s = floor(10/2 + 1) - 2 = 4 supporters needed,
    # z = Phi^-1((10 - 4) / 10) = Phi^-1(0.6).
    assert alie_z(10, 2) == pytest.approx(norm.ppf(0.6), rel=1e-9)
    # n = 50, m = 10: s = 26 - 10 = 16, z = Phi^-1(34/50)
    assert alie_z(50, 10) == pytest.approx(norm.ppf(34 / 50), rel=1e-9)


def test_alie_sends_mean_minus_z_std_of_the_attackers_own_updates():
    mal = {1: torch.tensor([1.0, 2.0]), 2: torch.tensor([3.0, 6.0])}
    honest = {c: torch.tensor([100.0, 100.0]) for c in range(3, 11)}
    sent = UpdateAttack("alie", 1.0, 0).apply(1, mal, honest)
    # mean (2, 4); population std (1, 2); n = 10, m = 2: z = Phi^-1(0.6)
    z = norm.ppf(0.6)
    expected = torch.tensor([2.0 - z * 1.0, 4.0 - z * 2.0], dtype=torch.float32)
    assert torch.allclose(sent[1], expected) and torch.allclose(sent[2], expected)
    fixed = UpdateAttack("alie", 1.0, 0, z=1.5).apply(1, mal, honest)
    assert torch.allclose(fixed[1], torch.tensor([0.5, 1.0]))


def _dataset(num_clients: int = 4, per_client: int = 10) -> ArrayDataset:
    n = num_clients * per_client
    x = torch.arange(n * 64, dtype=torch.float32).reshape(n, 64) / (n * 64)
    y = torch.arange(n) % 10
    return ArrayDataset(
        "toy", x.numpy(), y.numpy(), x[:20].numpy(), y[:20].numpy(),
        Partition.contiguous([per_client] * num_clients), (64,), 10, seed=0,
    )  # fmt: skip


def test_label_flip_poisons_only_the_malicious_clients():
    ds = _dataset()
    poisoned = PoisonedDataset(ds, [1], "label_flip", seed=0)
    x0, y0 = ds.client_data(1)
    x1, y1 = poisoned.client_data(1)
    assert torch.equal(x0, x1) and torch.equal(y1, 9 - y0)
    assert torch.equal(poisoned.client_data(2)[1], ds.client_data(2)[1])
    assert torch.equal(poisoned.test_data()[1], ds.test_data()[1])


def test_trigger_is_the_bottom_right_square_of_the_image():
    x = torch.zeros(3, 64)
    stamped = stamp_trigger(x, (64,), 2, 7.0)
    # an 8x8 image, row-major: (6,6), (6,7), (7,6), (7,7) are flat 54, 55, 62, 63
    assert set(torch.nonzero(stamped[0]).flatten().tolist()) == {54, 55, 62, 63}
    assert float(stamped[0, 63]) == 7.0 and float(x.abs().sum()) == 0.0
    img = stamp_trigger(torch.zeros(1, 1, 5, 5), (1, 5, 5), 3, 1.0)
    assert int(img.sum()) == 9 and float(img[0, 0, 1, 1]) == 0.0


def test_backdoor_stamps_a_share_and_relabels_to_the_target():
    ds = _dataset()
    poisoned = PoisonedDataset(ds, [0], "backdoor", seed=1, target=3, share=0.5)
    x, y = poisoned.client_data(0)
    x0, y0 = ds.client_data(0)
    changed = (x != x0).any(dim=1)
    assert int(changed.sum()) == math.ceil(0.5 * 10)  # the pixels were not all at the max
    assert torch.all(y[changed] == 3) and torch.equal(y[~changed], y0[~changed])
    assert torch.all(x[changed][:, 63] == poisoned.trigger_value)
    with pytest.raises(ConfigError, match="not a class"):
        PoisonedDataset(ds, [0], "backdoor", seed=1, target=10)


class _CornerModel(nn.Module):
    """Says class 3 when the trigger's corner pixel is bright, class 0 otherwise."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bright = (x[:, 63] > 0.5).float()
        out = torch.zeros(len(x), 10)
        out[:, 3] = bright
        out[:, 0] = 1 - bright
        return out + 0 * self.w


def test_backdoor_success_counts_triggered_non_target_inputs():
    x = torch.zeros(8, 64)
    y = torch.tensor([3, 3, 0, 1, 2, 4, 5, 6])
    model = _CornerModel()
    params = torch.zeros(1)
    assert backdoor_success(model, params, (x, y), (64,), 3, 2, 1.0) == 1.0
    # a trigger too dim for the model: no hits among the 6 non-target inputs
    assert backdoor_success(model, params, (x, y), (64,), 3, 2, 0.1) == 0.0


class _Fixed(Transport):
    def __init__(self, deltas: dict[int, torch.Tensor]) -> None:
        self.deltas = deltas
        self.tasks: list[Task] = []

    def dispatch(self, task: Task) -> None:
        self.tasks.append(task)

    def collect(self, until_s=None, progress=None) -> list[Completion]:  # noqa: ANN001
        done = [
            Completion(
                t, ClientReport(t.client_id, "completed", None, self.deltas[t.client_id], 10,
                                1.0, 0.5, 100, 100), t.start_s,
            )  # fmt: skip
            for t in self.tasks
        ]
        self.tasks = []
        return done


def test_attacking_transport_replaces_only_malicious_updates():
    deltas = {0: torch.ones(2), 1: torch.full((2,), 2.0), 2: torch.full((2,), 3.0)}
    t = AttackingTransport(_Fixed(deltas), UpdateAttack("sign_flip", 1.0, 0), [1])
    reports = t.fit(1, [0, 1, 2], torch.zeros(2), FitInstructions(1, 4, 0.1))
    got = {r.client_id: r.delta for r in reports}
    assert torch.equal(got[0], deltas[0]) and torch.equal(got[2], deltas[2])
    assert torch.equal(got[1], -deltas[1])


def test_config_refuses_incomplete_attacks():
    with pytest.raises(Exception, match="attack.fraction > 0"):
        build_config({"attack": {"name": "sign_flip"}})
    with pytest.raises(Exception, match="fraction"):
        build_config({"attack": {"name": "sign_flip", "fraction": 0.6}})
    with pytest.raises(Exception, match="needs an attack.name"):
        build_config({"attack": {"fraction": 0.2}})


def _attacked_run(tmp_path, name: str, fraction: float, **extra) -> tuple[dict, sqlite3.Connection]:
    cfg = build_config(
        {
            "data": {"num_clients": 20},
            # batch 16 set here, not the digits dataset's default of 8
            "train": {"rounds": 4, "clients_per_round": 10, "local_epochs": 2, "batch_size": 16},
            "attack": {"name": name, "fraction": fraction, **extra},
            "report": {"html": False},
        }
    )
    out = tmp_path / name
    run(cfg, out)
    return json.loads((out / "summary.json").read_text()), sqlite3.connect(out / "ledger.sqlite")


def test_a_scaling_attack_is_recorded_and_hurts_fedavg(tmp_path):
    clean, _ = _attacked_run(tmp_path, "none", 0.0)
    attacked, conn = _attacked_run(tmp_path, "scaling", 0.2, scale=1000.0)
    (stored,) = conn.execute("SELECT value FROM meta WHERE key = 'malicious_clients'").fetchone()
    assert json.loads(stored) == malicious_clients(20, 0.2, 0).tolist()
    assert attacked["attack"] == {"name": "scaling", "fraction": 0.2, "backdoor_success": None}
    assert attacked["privacy"] == {"epsilon": None, "delta": None}
    assert attacked["final_accuracy"] < 0.5 * clean["final_accuracy"]


def test_a_backdoor_run_measures_success_each_round(tmp_path):
    summary, conn = _attacked_run(tmp_path, "backdoor", 0.3, scale=5.0)
    rates = [r for (r,) in conn.execute("SELECT backdoor_success FROM rounds ORDER BY round")]
    assert len(rates) == 4 and all(0.0 <= r <= 1.0 for r in rates)
    assert summary["attack"]["backdoor_success"] == rates[-1]
    # with 30% of clients boosting a poisoned update x5, the trigger takes hold
    assert rates[-1] > 0.5
