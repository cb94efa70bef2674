"""Evaluation on clients' own test data: the per-client test split, the summary statistics
(computed by hand here), the ledger columns and summary.json's client_accuracy."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import greenfl
from greenfl.data.base import MIN_CLIENT_TEST, ArrayDataset, Partition, label_matched_test
from greenfl.data.synthetic import SyntheticDataset
from greenfl.ledger.schema import ROUND_COLUMNS
from greenfl.ledger.writer import LedgerWriter
from greenfl.models.evaluate import ClientAccuracy, per_client_accuracy
from greenfl.report.run_report import write_run_report


def test_client_accuracy_statistics_by_hand() -> None:
    acc = np.array([0.9, 0.1, 0.5, 0.7, 0.3, 1.0, 0.8, 0.6, 0.2, 0.4, 0.0])  # 11 clients
    got = ClientAccuracy.of(acc)
    assert got.mean == pytest.approx(5.5 / 11)
    # sorted: 0.0 0.1 ... 1.0; the 10th percentile sits at position 0.1 * 10 = 1.0 -> 0.1
    assert got.p10 == pytest.approx(0.1)
    # ceil(11 / 10) = 2 worst clients: 0.0 and 0.1
    assert got.worst_decile == pytest.approx(0.05)
    assert got.clients == 11


class _Threshold(nn.Module):
    """Predicts class 1 when the single feature is positive: accuracies known in advance."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([1.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([-x[:, 0] * self.w, x[:, 0] * self.w], dim=1)


def test_per_client_accuracy_segments_one_batched_pass() -> None:
    model = _Threshold()
    params = torch.tensor([1.0])
    parts = [
        (torch.tensor([[1.0], [-1.0], [2.0], [3.0]]), torch.tensor([1, 0, 0, 1])),  # 3/4
        (torch.zeros(0, 1), torch.zeros(0, dtype=torch.int64)),  # no test data: skipped
        (torch.tensor([[-2.0]]), torch.tensor([1])),  # 0/1
        (torch.tensor([[5.0], [-5.0]]), torch.tensor([1, 0])),  # 2/2
    ]
    assert per_client_accuracy(model, params, parts).tolist() == [0.75, 0.0, 1.0]


def test_label_matched_test_follows_each_clients_label_mix() -> None:
    train = np.array([0] * 30 + [1] * 10 + [2] * 60)
    test = np.array([0] * 20 + [1] * 20 + [2] * 20)
    part = Partition.from_lists([np.arange(0, 40), np.arange(40, 100)])  # 30x0+10x1 ; 60x2
    tp = label_matched_test(train, part, test, seed=3)
    # client 0: 40 train samples x 60/100 = 24 test samples, 3/4 of class 0, 1/4 class 1
    c0 = test[tp.of(0)]
    assert len(c0) == 24 and (c0 == 0).sum() == 18 and (c0 == 1).sum() == 6
    c1 = test[tp.of(1)]
    assert len(c1) == 36 and set(c1.tolist()) == {2}  # 36 > the 20 of class 2: with repeats
    assert len(np.unique(tp.of(0))) == 24  # within the class pool: without replacement
    assert tp.of(0).tolist() == label_matched_test(train, part, test, seed=3).of(0).tolist()


def test_small_clients_get_the_minimum_test_size() -> None:
    train = np.array([0, 1, 0])
    test = np.array([0, 1] * 10)
    part = Partition.from_lists([np.array([0, 1]), np.array([2])])
    tp = label_matched_test(train, part, test, seed=0)
    # share of the test set: 2 x 20/3 = 13.3 -> 13; 1 x 20/3 = 6.7 -> raised to the minimum
    assert [len(tp.of(c)) for c in range(2)] == [13, MIN_CLIENT_TEST]
    assert set(test[tp.of(1)].tolist()) == {0}


def test_array_dataset_client_test_data_is_from_the_test_set() -> None:
    x = np.arange(20, dtype=np.float32).reshape(20, 1)
    y = np.array([0, 1] * 10)
    part = Partition.from_lists([np.arange(10), np.arange(10, 14)])
    ds = ArrayDataset("t", x[:14], y[:14], x[14:] + 100, y[14:], part, (1,), 2, seed=1)
    xt, yt = ds.client_test_data(0)
    assert len(yt) == MIN_CLIENT_TEST and bool((xt >= 100).all())


def test_synthetic_client_test_data_is_fresh_but_same_distribution() -> None:
    ds = SyntheticDataset(5, seed=0, alpha=1.0, beta=1.0, mean_samples=20)
    xt, yt = ds.client_test_data(2)
    x, _ = ds.client_data(2)
    assert len(yt) == 20 and not torch.equal(xt[: len(x)], x[: len(xt)])
    assert torch.equal(ds.client_test_data(2)[0], xt)


def test_run_records_client_accuracy_in_ledger_and_summary(tmp_path: Path) -> None:
    res = greenfl.run(
        None,
        tmp_path,
        overrides=["train.rounds=4", "eval.every=2", "eval.clients=30", "data.num_clients=50"],
    )
    conn = sqlite3.connect(tmp_path / "ledger.sqlite")
    rows = conn.execute(
        "SELECT round, client_acc_mean, client_acc_p10, client_acc_worst_decile, "
        "client_acc_clients FROM rounds ORDER BY round"
    ).fetchall()
    assert [r[1] is None for r in rows] == [True, False, True, False]
    last = rows[-1]
    summary = json.loads((tmp_path / "summary.json").read_text())["client_accuracy"]
    assert summary == {
        "mean": last[1],
        "p10": last[2],
        "worst_decile": last[3],
        "clients": 30,
        "round": 4,
    }
    assert last[3] <= last[2] <= last[1] <= 1.0
    assert res.history[-1].client_accuracy is not None
    assert res.history[-1].client_accuracy.mean == last[1]
    html = write_run_report(tmp_path, extra=()).read_text()
    assert f'data-summary-key="client_accuracy.mean" data-value="{last[1]!r}"' in html
    assert 'id="client-accuracy"' in html and f"{last[3] * 100:.2f}%" in html


def test_no_client_evaluation_leaves_null(tmp_path: Path) -> None:
    res = greenfl.run(None, tmp_path, overrides=["train.rounds=2", "eval.every=0"])
    assert res.summary["client_accuracy"] is None


def test_a_version_1_ledger_gets_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    conn = sqlite3.connect(path)
    later = ("client_acc", "backdoor_success", "epsilon", "dp_clip_norm")
    old = [c for c in ROUND_COLUMNS if not c.startswith(later)]
    conn.execute(f"CREATE TABLE rounds ({', '.join(old)}, PRIMARY KEY (round))")
    conn.execute(f"INSERT INTO rounds VALUES ({', '.join('1' * len(old))})")
    conn.commit()
    conn.close()
    w = LedgerWriter(path, background=False)
    cols = [r[1] for r in w.conn.execute("PRAGMA table_info(rounds)")]
    added = [c for c in ROUND_COLUMNS if c.startswith(later)]
    assert cols[-len(added):] == added and len(added) == 7
    row = w.conn.execute("SELECT client_acc_mean, epsilon, backdoor_success FROM rounds")
    assert row.fetchone() == (None, None, None)
    w.close()


def test_one_clients_test_data_equals_its_share_of_the_whole_partition() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    x = rng.standard_normal((200, 3)).astype(np.float32)
    part = Partition.from_lists([np.arange(i, 150, 5) for i in range(5)])
    ds = ArrayDataset("t", x[:150], y[:150], x[150:], y[150:], part, (3,), 4, seed=2)
    whole = label_matched_test(y[:150], part, y[150:], seed=2)
    for c in (4, 0, 2):  # any order: each client's draw is its own
        assert ds.client_test_data(c)[1].tolist() == y[150:][whole.of(c)].tolist()
