"""Secure aggregation's price in a simulated run: the same model as without it, and each
client-round and the server charged exactly greenfl.secagg.cost's overhead."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import greenfl
from greenfl.config import RunConfig, build_config
from greenfl.factories import dataset_for
from greenfl.secagg.cost import secagg_cost


def _config(enabled: bool) -> RunConfig:
    return build_config(
        {
            "data": {"num_clients": 30},
            # one local epoch of batch 16 (the digits dataset's defaults are 5 of 8)
            "train": {"rounds": 3, "clients_per_round": 6, "local_epochs": 1, "batch_size": 16},
            "secagg": {"enabled": enabled},
            "report": {"html": False},
        }
    )


def _run(tmp_path: Path, enabled: bool) -> tuple[sqlite3.Connection, dict]:
    out = tmp_path / str(enabled)
    res = greenfl.run(_config(enabled), out)
    return sqlite3.connect(out / "ledger.sqlite"), res.summary


def test_secagg_adds_its_bytes_and_compute_and_nothing_else(tmp_path: Path):
    plain, plain_summary = _run(tmp_path, False)
    masked, masked_summary = _run(tmp_path, True)
    # The masked sum is decoded from fixed point (steps of 2^-frac_bits, ~1e-8 here), so the
    # model equals the plain one up to that rounding: a test input whose top two logits tie
    # within it may be classified the other way. One input of the central test set at most.
    cfg = _config(False)
    one_input = 1 / len(dataset_for(cfg.data, cfg.seed).test_data()[1])
    assert masked_summary["final_accuracy"] == pytest.approx(
        plain_summary["final_accuracy"], abs=one_input + 1e-12
    )
    q = "SELECT round, client_id, bytes_up, bytes_down, flops FROM client_rounds ORDER BY 1, 2"
    a, b = plain.execute(q).fetchall(), masked.execute(q).fetchall()
    numel = 64 * 64 + 64 + 64 * 10 + 10  # the quickstart's MLP 64-64-10
    cost = secagg_cost(6, numel)
    # by hand, complete graph of 6 (5 neighbours each): advertise 8 + 2 x 32, shares out
    # 8 + 5 x 200, masked input 8 (+0: 32-bit words replace float32), revealed shares
    # 8 + 5 x 82: 72 + 1008 + 8 + 418 = 1506 bytes up per client
    assert cost.bytes_up == 1506
    assert len(a) == len(b) == 18
    for (r, c, up, down, flops), (r2, c2, up2, down2, flops2) in zip(a, b, strict=True):
        assert (r, c) == (r2, c2)
        assert up2 - up == cost.bytes_up and down2 - down == cost.bytes_down
        assert abs((flops2 - flops) - cost.client_flops) < 1e-6 * cost.client_flops
    q = "SELECT server_flops FROM rounds ORDER BY round"
    extra = [y - x for (x,), (y,) in zip(plain.execute(q), masked.execute(q), strict=True)]
    assert extra == [int(cost.server_flops)] * 3
    assert masked_summary["carbon_g"]["total"] > plain_summary["carbon_g"]["total"]
