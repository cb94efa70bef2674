from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest

import greenfl
from greenfl.config import RunConfig
from greenfl.ledger import read_ledger
from greenfl.selection.fairness import jain_index


def test_ledger_records_encoded_sizes_for_q8(tiny_config: RunConfig, tmp_path: Path) -> None:
    cfg = tiny_config.replace(**{"compression.name": "q8", "compression.params.chunk_size": 1024})
    greenfl.run(cfg, tmp_path)
    n = 4810  # float32 MLP 64-64-10
    for r in read_ledger(tmp_path).client_rounds:
        assert r["bytes_up"] == 8 + 8 * math.ceil(n / 1024) + n  # header, scales, one byte each
        assert r["bytes_down"] == 4 * n


def test_fairness_meta_matches_the_ledger(tiny_config: RunConfig, tmp_path: Path) -> None:
    cfg = tiny_config.replace(**{"selection.name": "carbon"})
    greenfl.run(cfg, tmp_path)
    led = read_ledger(tmp_path)
    counts = np.zeros(cfg.data.num_clients)
    for r in led.client_rounds:
        if r["status"] == "completed":
            counts[r["client_id"]] += 1
    assert float(led.meta["jain_index"]) == pytest.approx(jain_index(counts))
    assert float(led.meta["jain_index"]) == pytest.approx(
        counts.sum() ** 2 / (len(counts) * (counts**2).sum())
    )
    assert led.meta["least_region"] in {r["name"] for r in led.fleet["region"]}
    assert 0.0 <= float(led.meta["least_region_accuracy"]) <= 1.0
    assert "test data" in led.meta["least_region_accuracy_data"]  # never training data


def test_estimates_match_what_the_ledger_then_records(
    tiny_config: RunConfig, one_device_fleet: Path, tmp_path: Path
) -> None:
    from greenfl.factories import build_loop

    cfg = tiny_config.replace(**{"fleet.catalog": str(one_device_fleet), "train.rounds": 1})
    loop = build_loop(cfg, tmp_path)
    ids = np.arange(cfg.data.num_clients)
    est, _ = loop.parts.costs.estimate(ids, 0.0, cfg.train.local_epochs)
    loop.run()
    conn = sqlite3.connect(tmp_path / "ledger.sqlite")
    for cid, op, emb, comp, comm in conn.execute(
        "SELECT client_id, carbon_operational_g, carbon_embodied_g, energy_compute_j, "
        "energy_comm_j FROM client_rounds"
    ):
        assert est.carbon_operational_g[cid] == pytest.approx(op, rel=1e-6)
        assert est.carbon_embodied_g[cid] == pytest.approx(emb, rel=1e-6)
        assert est.energy_j[cid] == pytest.approx(comp + comm, rel=1e-6)
    loop.ledger.close()
