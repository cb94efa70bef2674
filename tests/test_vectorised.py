"""The vectorised cohort trainer reproduces the sequential one: same batches, same updates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import greenfl
from greenfl.clients.inprocess import InProcessTransport
from greenfl.clients.trainer import SequentialTrainer, TrainResult
from greenfl.clients.vectorised import VectorisedTrainer, unsupported_reason
from greenfl.compression import make as make_codec
from greenfl.config import RunConfig, build_config
from greenfl.core.errors import ConfigError
from greenfl.core.messages import FitInstructions
from greenfl.core.params import get_flat
from greenfl.data.base import FederatedDataset
from greenfl.factories import build_model_for, dataset_for, trainer_for
from greenfl.ledger import read_ledger
from tests.tolerance import SAME_LOSS_REL, SAME_UPDATE_REL, assert_close_to_scale


def _synthetic(num_clients: int = 60) -> tuple[FederatedDataset, nn.Module]:
    # Synthetic(1,1) client sizes are lognormal (5..444 samples): unequal sizes and steps.
    cfg = build_config({"data": {"dataset": "synthetic", "num_clients": num_clients}})
    ds = dataset_for(cfg.data, 3)
    return ds, build_model_for(cfg, ds)


def _both(
    model: nn.Module,
    ds: FederatedDataset,
    cohort: list[int],
    ins: FitInstructions,
    vec: VectorisedTrainer | None = None,
) -> tuple[list[TrainResult], list[TrainResult]]:
    g = get_flat(model)
    seq = SequentialTrainer().train(model, g, ds, cohort, ins, 4, 11)
    assert torch.equal(g, get_flat(model)) is False  # training never writes into g
    assert not torch.equal(g, seq[0].delta)
    out = (vec or VectorisedTrainer()).train(model, g, ds, cohort, ins, 4, 11)
    return seq, out


def _assert_same(seq: list[TrainResult], vec: list[TrainResult]) -> None:
    assert [r.client_id for r in vec] == [r.client_id for r in seq]
    for a, b in zip(seq, vec, strict=True):
        assert (b.num_samples, b.samples_processed, b.steps) == (
            a.num_samples,
            a.samples_processed,
            a.steps,
        )
        assert b.delta.shape == a.delta.shape and b.delta.dtype == torch.float32
        # same steps, float32 sums in another order: equal on the scale of the update
        # (tests/tolerance.py: SAME_UPDATE_REL, a learning rate 1% off is 10x beyond it)
        assert_close_to_scale(b.delta, a.delta, SAME_UPDATE_REL, f"client {a.client_id}")
        assert b.loss == pytest.approx(a.loss, rel=SAME_LOSS_REL)


def test_fedavg_updates_equal_sequential_with_unequal_client_sizes() -> None:
    ds, model = _synthetic()
    cohort = [int(c) for c in np.random.default_rng(1).choice(60, 25, replace=False)]
    sizes = ds.client_sizes()[cohort]
    # batch 16: clients with 1 step and with many steps, and partial last batches
    assert sizes.min() <= 16 < sizes.max() and (sizes % 16 != 0).any()
    seq, vec = _both(model, ds, cohort, FitInstructions(2, 16, 0.05))
    _assert_same(seq, vec)
    # a one-step client really moved, and by as much as the sequential trainer moved it
    assert all(float(r.delta.abs().max()) > 1e-4 for r in vec)


def test_the_comparison_fails_on_a_learning_rate_1_percent_off() -> None:
    # _assert_same's tolerances are loose enough for float32 reordering, not for a real bug:
    # here the updates move by 2.3e-3 to 1.3e-2 of their norm (SAME_UPDATE_REL is 1e-3), the
    # losses by 7e-4 to 7e-3 (SAME_LOSS_REL 1e-4)
    ds, model = _synthetic()
    cohort = [5, 1, 9, 22, 30]
    g = get_flat(model)
    seq = SequentialTrainer().train(model, g, ds, cohort, FitInstructions(2, 16, 0.05), 4, 11)
    off = VectorisedTrainer().train(model, g, ds, cohort, FitInstructions(2, 16, 0.0505), 4, 11)
    with pytest.raises(AssertionError, match="client 5"):
        _assert_same(seq, off)
    for a, b in zip(seq, off, strict=True):  # every client, not only the first one checked
        assert b.loss != pytest.approx(a.loss, rel=SAME_LOSS_REL)
        with pytest.raises(AssertionError):
            assert_close_to_scale(b.delta, a.delta, SAME_UPDATE_REL)


def test_fedprox_proximal_term_matches() -> None:
    ds, model = _synthetic()
    cohort = list(range(0, 40, 3))
    ins = FitInstructions(3, 8, 0.05, prox_mu=0.5)
    seq, vec = _both(model, ds, cohort, ins)
    _assert_same(seq, vec)
    plain_seq, _ = _both(model, ds, cohort, ins.with_(prox_mu=0.0))
    # the proximal term changes the updates (it pulls them towards the global model)
    assert float((plain_seq[0].delta - seq[0].delta).abs().max()) > 1e-4


def test_momentum_matches() -> None:
    ds, model = _synthetic()
    seq, vec = _both(model, ds, [5, 1, 9, 22, 30], FitInstructions(2, 16, 0.02, momentum=0.9))
    _assert_same(seq, vec)


def test_cnn_through_vmap_matches_and_chunks() -> None:
    cfg = build_config(
        {
            "data": {"dataset": "images", "num_clients": 6, "params": {"samples_per_client": 20}},
            "model": {"name": "cnn"},
            "train": {"clients_per_round": 3},
        }
    )
    ds = dataset_for(cfg.data, 0)
    model = build_model_for(cfg, ds)
    assert unsupported_reason(model) is None
    # a tiny memory budget forces one client per chunk
    tiny = VectorisedTrainer(chunk_budget_bytes=1)
    assert tiny.chunk_size(model, ds.input_shape, 16) == 1
    seq, vec = _both(model, ds, [4, 0, 2], FitInstructions(1, 16, 0.05), tiny)
    _assert_same(seq, vec)


def test_mlp_chunked_equals_unchunked() -> None:
    ds, model = _synthetic()
    cohort = list(range(30))
    ins = FitInstructions(1, 16, 0.1)
    small = VectorisedTrainer(chunk_budget_bytes=2**20)
    assert 1 < small.chunk_size(model, ds.input_shape, 16) < len(cohort)
    g = get_flat(model)
    whole = VectorisedTrainer().train(model, g, ds, cohort, ins, 1, 0)
    chunked = small.train(model, g, ds, cohort, ins, 1, 0)
    for a, b in zip(whole, chunked, strict=True):
        assert a.client_id == b.client_id
        assert_close_to_scale(b.delta, a.delta, SAME_UPDATE_REL, f"client {a.client_id}")


def test_auto_picks_vectorised_only_where_it_is_exact() -> None:
    cfg = build_config({"train": {"clients_per_round": 10}})
    mlp = nn.Sequential(nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 10))
    assert trainer_for(cfg, mlp).name == "vectorised"
    assert trainer_for(cfg.replace(**{"train.clients_per_round": 2}), mlp).name == "sequential"
    assert trainer_for(cfg.replace(**{"engine.trainer": "sequential"}), mlp).name == "sequential"
    bn = nn.Sequential(nn.Linear(64, 8), nn.BatchNorm1d(8), nn.Linear(8, 10))
    assert "buffers" in (unsupported_reason(bn) or "")
    assert trainer_for(cfg, bn).name == "sequential"
    drop = nn.Sequential(nn.Linear(64, 8), nn.Dropout(0.5), nn.Linear(8, 10))
    assert "Dropout" in (unsupported_reason(drop) or "")
    with pytest.raises(ConfigError, match="engine.trainer"):
        trainer_for(cfg.replace(**{"engine.trainer": "vectorised"}), drop)


@pytest.mark.parametrize("codec", ["q8", "topk"])
def test_codecs_apply_after_vectorised_training(codec: str) -> None:
    ds, model = _synthetic()
    cohort = list(range(12))
    ins = FitInstructions(1, 16, 0.05)
    g = get_flat(model)
    reports = {}
    for trainer in (SequentialTrainer(), VectorisedTrainer()):
        transport = InProcessTransport(model, ds, trainer, make_codec(codec), 1.0, 5)
        reports[trainer.name] = transport.fit(1, cohort, g, ins)
    for a, b in zip(reports["sequential"], reports["vectorised"], strict=True):
        assert (a.client_id, a.bytes_up, a.bytes_down) == (b.client_id, b.bytes_up, b.bytes_down)
        assert a.bytes_up < 4 * g.numel()  # really compressed
        # same seeds, near-identical inputs: decoded updates agree but for rare rounding flips
        # (an entry at a quantisation boundary or the top-k cut); the rest agree on the scale
        # of the update, as the trainers' own updates do
        close = torch.isclose(a.delta, b.delta, atol=SAME_UPDATE_REL * float(a.delta.abs().max()))
        assert float(close.float().mean()) > 0.99


def _client_rows(out: Path) -> list[dict]:
    # start_s follows the previous round's measured server time: wall clock, never the same
    # twice, whichever trainer runs.
    return [{k: v for k, v in r.items() if k != "start_s"} for r in read_ledger(out).client_rounds]


def test_ledger_is_identical_with_either_trainer(tiny_config: RunConfig, tmp_path: Path) -> None:
    cfg = tiny_config.replace(
        **{
            "fleet.dropout_prob": 0.2,
            "fleet.ci_mode": "annual",
            "strategy.name": "fedprox",
            "strategy.params.mu": 0.1,
        }
    )
    runs = {}
    for trainer in ("sequential", "vectorised"):
        out = tmp_path / trainer
        res = greenfl.run(cfg.replace(**{"engine.trainer": trainer}), out)
        runs[trainer] = (res, _client_rows(out), read_ledger(out).rounds)
    (res_s, rows_s, rounds_s), (res_v, rows_v, rounds_v) = runs["sequential"], runs["vectorised"]
    assert len(rows_s) == 3 * 5 and rows_s == rows_v
    # The two trainers' models differ in their last float32 bits (SAME_UPDATE_REL), so a
    # test input whose top two logits tie within rounding may be classified the other way:
    # accuracy may differ by one input in the central test set, the loss by rounding.
    one_input = 1 / len(dataset_for(cfg.data, cfg.seed).test_data()[1])
    for a, b in zip(rounds_s, rounds_v, strict=True):
        assert a["accuracy"] == pytest.approx(b["accuracy"], abs=one_input + 1e-12)
        assert a["loss"] == pytest.approx(b["loss"], rel=SAME_LOSS_REL)
    assert (
        res_s.summary["energy_j"]["client_compute"] == res_v.summary["energy_j"]["client_compute"]
    )


def test_local_step_cap_bounds_work_and_stays_equal_to_sequential() -> None:
    ds, model = _synthetic()
    cohort = [5, 1, 9, 22, 30]
    sizes = ds.client_sizes()[cohort]
    ins = FitInstructions(2, 8, 0.05, max_steps=3)
    seq, vec = _both(model, ds, cohort, ins)
    _assert_same(seq, vec)
    for r, n in zip(seq, sizes, strict=True):
        # by hand: 2 epochs of ceil(n/8) steps, at most 3; full batches of 8 until the cap
        steps = min(2 * -(-int(n) // 8), 3)
        per_epoch = -(-int(n) // 8)
        full, rest = divmod(steps, per_epoch)
        assert r.steps == steps
        assert r.samples_processed == full * int(n) + rest * 8
    assert any(r.steps == 3 for r in seq) and max(sizes) > 24  # the cap did bind
