"""Sparse training (issue 31, item 3): magnitude pruning on Zhu & Gupta's schedule, the
server's mask, masked training, the bytes that travel (hand counts for the digits MLP
64-[64]-10), FLOPs that stay dense, resume, and the config's refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import greenfl
from greenfl.cli import main
from greenfl.clients.trainer import train_one
from greenfl.config import RunConfig
from greenfl.config.run import build_config
from greenfl.core.errors import ConfigError, LedgerError
from greenfl.core.messages import ClientUpdate, FitInstructions
from greenfl.core.params import get_flat, set_flat
from greenfl.factories import build_loop
from greenfl.factories.sparsity import sparse_training_for
from greenfl.sparse.channels import ChannelPruner
from greenfl.sparse.layout import prunable_layout
from greenfl.sparse.mask import magnitude_mask, mask_cost, pruned_count
from greenfl.sparse.schedule import PruneSchedule
from greenfl.sparse.server import SparseTraining
from greenfl.sparse.strategy import MaskedStrategy
from greenfl.sparse.training import MaskedModule
from greenfl.strategy.fedavgm import FedAvgM, FedAvgMParams
from tests.ledger_sql import rows

# The digits MLP 64-[64]-10: weights 64x64 and 10x64 (prunable), biases 64 and 10.
W1, B1, W2, B2 = 64 * 64, 64, 10 * 64, 10
NUMEL = W1 + B1 + W2 + B2  # 4810
PRUNABLE = W1 + W2  # 4736
# one epoch of every sample: 316 x 64 FLOPs a sample (tests/test_submodel_run.py's count)
FLOPS_PER_SAMPLE = 316 * 64


def kept_at(sparsity: float) -> int:
    """Hand count: each weight matrix keeps all but floor(sparsity x its size)."""
    return NUMEL - int(sparsity * W1 + 1e-9) - int(sparsity * W2 + 1e-9)


MASK_BYTES = 1 + PRUNABLE // 8  # a bitmap of 4736 bits (592 bytes) and its tag byte


def sparse_config(tiny_config: RunConfig, **sets: object) -> RunConfig:
    base = {
        "train.rounds": 4,
        "sparsity.name": "magnitude",
        "sparsity.target": 0.8,
        "sparsity.start_round": 1,
        "sparsity.end_round": 3,
    }
    return tiny_config.replace(**{**base, **sets})


# --- the schedule -----------------------------------------------------------------------


def test_schedule_by_hand() -> None:
    s = PruneSchedule(target=0.8, start_round=1, end_round=3)
    # s_t = 0.8 (1 - (1 - (t - 1) / 2)^3): 0 at t0, 0.8 x (1 - 1/8) = 0.7 halfway, 0.8 at end
    assert [s.sparsity_at(r) for r in range(5)] == pytest.approx([0, 0, 0.7, 0.8, 0.8])
    assert [s.prunes_at(r) for r in range(5)] == [False, True, True, True, False]
    # every 2 rounds from 2 to 7: steps at 2, 4, 6 and the end 7; between steps the last
    s = PruneSchedule(target=0.5, start_round=2, end_round=7, every_rounds=2)
    assert [r for r in range(10) if s.prunes_at(r)] == [2, 4, 6, 7]
    # round 5 holds round 4's value: 0.5 (1 - (1 - 2/5)^3) = 0.5 x 0.784
    assert s.sparsity_at(5) == pytest.approx(0.392)
    assert s.sparsity_at(6) == pytest.approx(0.5 * (1 - 0.2**3))
    assert s.sparsity_at(7) == s.sparsity_at(100) == 0.5
    # one-shot: start = end prunes to the target at once
    assert PruneSchedule(0.6, 3, 3).sparsity_at(3) == 0.6


def test_schedule_refuses_nonsense() -> None:
    with pytest.raises(ConfigError, match="end_round .2. is before start_round .3."):
        PruneSchedule(0.5, 3, 2)
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        PruneSchedule(1.0, 1, 2)


# --- the mask ---------------------------------------------------------------------------


def tiny_model() -> nn.Module:
    """3 -> 2 -> 1: weight (6), bias (2), weight (2), bias (1): 11 coordinates."""
    return nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))


def test_layout_prunes_weights_not_biases() -> None:
    layout = prunable_layout(tiny_model())
    assert layout.numel == 11 and layout.prunable_numel == 8
    assert layout.prunable_positions().tolist() == [True] * 6 + [False] * 2 + [True] * 2 + [False]
    lstm = prunable_layout(nn.LSTM(2, 3))  # weight_ih (12x2), weight_hh (12x3), 2 biases
    assert [s.prunable for s in lstm.segments] == [True, True, False, False]
    with pytest.raises(ConfigError, match="has none"):
        prunable_layout(nn.Sequential(nn.LayerNorm(4)))


def test_the_k_smallest_magnitudes_of_each_tensor_are_pruned() -> None:
    layout = prunable_layout(tiny_model())
    #                      first weight (6)             bias        weight     bias
    params = torch.tensor([0.5, -0.1, 0.3, -0.2, 0.05, 0.3, 0.01, 0.02, -0.4, 0.9, 0.0])
    mask = magnitude_mask(params, layout, 0.5)
    # first weight: floor(0.5 x 6) = 3 pruned, |w| = .5 .1 .3 .2 .05 .3: the .05, .1, .2;
    # second: 1 of 2, the 0.4. The biases stay, tiny as they are.
    expected = [True, False, True, False, False, True, True, True, False, True, True]
    assert mask.tolist() == expected
    # at 0.7: floor(4.2) = 4 of the first (the tie of the two 0.3 goes to the earlier one)
    mask = magnitude_mask(params, layout, 0.7)
    assert mask[:6].tolist() == [True, False, False, False, False, True]
    assert mask[8:10].tolist() == [False, True]


def test_a_weight_pruned_before_is_pruned_first() -> None:
    layout = prunable_layout(tiny_model())
    params = torch.tensor([0.5, 0.0, 0.3, 0.2, 0.05, 0.4, 0, 0, 0.4, 0.9, 0])
    previous = torch.ones(11, dtype=torch.bool)
    previous[2] = False  # pruned earlier, though 0.3 is not among the smallest now
    mask = magnitude_mask(params * previous, layout, 1 / 3, previous)
    # floor(6 / 3) = 2: the pruned one, then the smallest magnitude (0.0 at 1)
    assert (~mask[:6]).nonzero().flatten().tolist() == [1, 2]
    assert pruned_count(10, 0.3) == 3  # not 2: 0.3 x 10 is 2.9999999999999996


def test_mask_cost_is_the_cheaper_encoding() -> None:
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    layout = prunable_layout(model)
    params = get_flat(model)
    half = magnitude_mask(params, layout, 0.5)
    cost = mask_cost(half, layout)
    assert (cost.encoding, cost.bytes) == ("bitmap", MASK_BYTES)
    # 1% pruned: floor(40.96) + floor(6.4) = 46 pruned positions x 4 bytes < 592
    light = magnitude_mask(params, layout, 0.01)
    cost = mask_cost(light, layout)
    assert (cost.encoding, cost.bytes) == ("indices", 1 + 4 * 46)


# --- masked training and aggregation ----------------------------------------------------


def test_pruned_weights_get_no_gradient_and_stay_zero() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    layout = prunable_layout(model)
    mask = magnitude_mask(get_flat(model), layout, 0.5)
    masked = MaskedModule(model, layout)
    masked.set_mask(mask)
    start = get_flat(model).masked_fill(~mask, 0.0)  # what the server sends
    x = torch.randn(12, 3, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 2, (12,), generator=torch.Generator().manual_seed(2))
    # momentum and FedProx's pull: neither may move a weight whose gradient is zero
    ins = FitInstructions(local_epochs=3, batch_size=4, lr=0.5, momentum=0.9, prox_mu=0.1)
    res = train_one(masked, start, x, y, 0, ins, seed=3)
    assert res.steps == 9
    assert torch.all(res.delta[~mask] == 0)  # exactly: no gradient ever reached them
    # the kept weights trained (a few feed a unit the ReLU keeps dead, and stay put)
    assert torch.count_nonzero(res.delta[mask]) > int(mask.sum()) // 2
    # the masked forward is the plain model's at the masked parameters
    set_flat(model, start + res.delta)
    with torch.no_grad():
        plain = model(x)
        assert torch.equal(masked(x), plain)


class AddOnes:
    """An inner strategy that moves every coordinate by 1 and records its updates."""

    name = "ones"

    def __init__(self) -> None:
        self.seen: list[torch.Tensor] = []

    def configure(self, round_idx: int, base: FitInstructions) -> FitInstructions:
        return base

    def aggregate(self, global_params: torch.Tensor, updates: list[ClientUpdate]) -> torch.Tensor:
        self.seen = [u.delta for u in updates]
        return global_params + 1.0

    def aggregation_flops(self, num_updates: int, num_params: int) -> int:
        return 7

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None


def test_the_server_reads_kept_coordinates_and_masks_after_aggregation() -> None:
    model = tiny_model()
    layout = prunable_layout(model)
    sparse = SparseTraining(model, layout, PruneSchedule(0.5, 1, 1), 4, lambda n: 4 * n)
    inner = AddOnes()
    strategy = MaskedStrategy(inner, sparse)
    params = torch.tensor([0.5, -0.1, 0.3, -0.2, 0.05, 0.3, 0.01, 0.02, -0.4, 0.9, 0.0])
    strategy.configure(1, FitInstructions(1, 8, 0.1))
    new = strategy.aggregate(params, [ClientUpdate(0, torch.ones(11), 5)])
    # round 1 is the end: pruned to 0.5 on inner's result (params + 1), then masked
    mask = magnitude_mask(params + 1.0, layout, 0.5)
    assert torch.equal(sparse.mask, mask) and sparse.version == 1
    assert torch.equal(new, (params + 1.0) * mask)
    # the next round: the inner strategy sees deltas only at kept coordinates
    strategy.configure(2, FitInstructions(1, 8, 0.1))
    out = strategy.aggregate(new, [ClientUpdate(0, torch.ones(11), 5)])
    assert torch.equal(inner.seen[0], mask.float())
    assert torch.all(out[~mask] == 0) and sparse.version == 1  # no pruning after the end
    assert strategy.aggregation_flops(3, 11) == 7 + 11


def test_fedavgm_momentum_never_revives_a_pruned_weight() -> None:
    model = tiny_model()
    layout = prunable_layout(model)
    sparse = SparseTraining(model, layout, PruneSchedule(0.5, 2, 2), 4, lambda n: 4 * n)
    strategy = MaskedStrategy(FedAvgM(FedAvgMParams(server_lr=1.0, server_momentum=0.9)), sparse)
    params = torch.linspace(-1, 1, 11)
    for r in range(1, 5):
        strategy.configure(r, FitInstructions(1, 8, 0.1))
        # dense deltas, as an attacker could send: the mask still holds
        params = strategy.aggregate(params, [ClientUpdate(0, torch.full((11,), 0.3), 5)])
    assert sparse.version == 1
    assert torch.all(params[~sparse.mask] == 0)
    assert int((~sparse.mask).sum()) == 3 + 1


# --- a run ------------------------------------------------------------------------------


def test_a_run_counts_bytes_at_its_density_and_flops_dense(
    tiny_config: RunConfig, tmp_path: Path
) -> None:
    cfg = sparse_config(tiny_config)
    loop = build_loop(cfg, tmp_path / "sparse")
    loop.run()
    loop.ledger.finish("completed", "done")
    greenfl.run(tiny_config.replace(**{"train.rounds": 4}), tmp_path / "dense")
    sql = (
        "SELECT round, client_id, density, bytes_up, bytes_down, flops, num_samples "
        "FROM client_rounds ORDER BY round, client_id"
    )
    got, dense = rows(tmp_path / "sparse", sql), rows(tmp_path / "dense", sql)
    assert [r[:2] for r in got] == [r[:2] for r in dense]  # the same cohorts
    # pruned after round 2 to 0.7 and after round 3 to 0.8 (round 1's is 0: no change)
    kept = {1: NUMEL, 2: NUMEL, 3: kept_at(0.7), 4: kept_at(0.8)}
    assert kept[3] == 1495 and kept[4] == 1022
    for (rnd, _cid, density, up, down, flops, samples), d in zip(got, dense, strict=True):
        assert density == pytest.approx(kept[rnd] / NUMEL, rel=1e-12)
        assert up == 4 * kept[rnd]  # identity codec: float32 values of the kept coordinates
        # every client of rounds 3 and 4 lacks that round's new mask: it comes down too
        assert down == 4 * kept[rnd] + (MASK_BYTES if rnd >= 3 else 0)
        # dense kernels: the FLOPs are the dense run's, and the dense model's by hand
        assert flops == d[5] == pytest.approx(FLOPS_PER_SAMPLE * samples, rel=1e-12)
    assert all(r[2] == 1.0 for r in dense)  # a dense run's density
    # the global model: exactly zero where pruned, and pruned as the schedule says
    sparse = loop.parts.costs.sparse
    assert sparse is not None
    params = loop.state.global_params
    assert torch.all(params[~sparse.mask] == 0)
    assert int(sparse.mask.sum()) == kept_at(0.8)
    assert sparse.sparsity == pytest.approx((3276 + 512) / PRUNABLE)  # floor(0.8 x each)
    # estimates price what travels: the kept values up; values and mask down
    assert loop.parts.costs._model_cost() == (
        loop.parts.costs.flops_per_sample,
        4 * 1022,
        4 * 1022 + MASK_BYTES,
    )


def test_a_client_holding_the_mask_does_not_download_it_again(
    tiny_config: RunConfig, tmp_path: Path
) -> None:
    # five clients, all in every round; the mask changes after rounds 2 and 3
    cfg = sparse_config(tiny_config, **{"data.num_clients": 5, "train.rounds": 5})
    greenfl.run(cfg, tmp_path / "s")
    got = rows(tmp_path / "s", "SELECT round, bytes_down FROM client_rounds ORDER BY round")
    assert len(got) == 25
    down = {1: 4 * NUMEL, 2: 4 * NUMEL, 3: 4 * 1495 + MASK_BYTES, 4: 4 * 1022 + MASK_BYTES}
    down[5] = 4 * 1022  # they all hold round 3's mask: only the values come down
    assert all(b == down[r] for r, b in got)


def test_resume_restores_the_mask(tiny_config: RunConfig, tmp_path: Path) -> None:
    cfg = sparse_config(tiny_config, **{"train.rounds": 5, "sparsity.end_round": 4})
    greenfl.run(cfg, tmp_path / "a")
    crashed = build_loop(cfg, tmp_path / "b")
    crashed.run_round()
    crashed.run_round()
    crashed.run_round()  # the mask changed after rounds 2 and 3
    crashed.ledger.close()  # as if killed: no finish()
    loop = build_loop(cfg, tmp_path / "b", resume=True)
    sparse = loop.parts.costs.sparse
    assert sparse is not None and sparse.version == 2
    assert torch.equal(sparse.mask, crashed.parts.costs.sparse.mask)
    assert np.array_equal(sparse.held, crashed.parts.costs.sparse.held)
    loop.run()
    loop.ledger.finish("completed", "done")
    sql = (
        "SELECT round, client_id, density, bytes_up, bytes_down, flops FROM client_rounds "
        "ORDER BY round, client_id"
    )
    assert rows(tmp_path / "b", sql) == rows(tmp_path / "a", sql)
    sql = "SELECT round, accuracy, loss FROM rounds ORDER BY round"
    assert rows(tmp_path / "b", sql) == rows(tmp_path / "a", sql)


def test_a_snapshot_of_another_model_is_refused() -> None:
    model = tiny_model()
    sparse = SparseTraining(model, prunable_layout(model), PruneSchedule(0.5, 1, 1), 3, len)
    state = sparse.state_dict()
    other = nn.Sequential(nn.Linear(3, 3))
    with pytest.raises(LedgerError, match="over 11 parameters, this model has 12"):
        fresh = SparseTraining(other, prunable_layout(other), PruneSchedule(0.5, 1, 1), 3, len)
        fresh.load_state_dict(state)


# --- the config -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["sparsity.end_round=50"], "sparsity.end_round (50) is after train.rounds (4)"),
        (["sparsity.start_round=3", "sparsity.end_round=2"], "is before sparsity.start_round"),
        (["sparsity.target=1"], "sparsity.target: Input should be less than 1"),
        (["sparsity.every_rounds=0"], "sparsity.every_rounds: Input should be greater"),
        (["secagg.enabled=true"], "does not support secagg.enabled yet"),
        (["engine.trainer='vectorised'"], "does not support engine.trainer = 'vectorised'"),
        (["compression.name='topk'"], "does not support compression.name = 'topk'"),
        (["privacy.mode='central'", "privacy.noise_multiplier=1.0"], "support privacy.mode"),
        (["engine.mode='async'", "strategy.name='fedbuff'"], "engine.mode = 'async'"),
    ],
)
def test_bad_config_is_refused_in_one_line(sets: list[str], message: str) -> None:
    base = ["train.rounds=4", "sparsity.name='magnitude'", "sparsity.end_round=3"]
    with pytest.raises(ConfigError) as info:
        build_config({}, base + sets)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_sub_models_and_sparsity_together_are_refused() -> None:
    with pytest.raises(ConfigError) as info:
        build_config(
            {"train": {"rounds": 4}, "sparsity": {"name": "magnitude", "end_round": 2}},
            ["submodel.name='heterofl'", "submodel.widths=[1.0, 0.5]"],
        )
    assert "sparsity.name = 'magnitude' does not support submodel.name yet" in str(info.value)


def test_the_cli_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "s.toml"
    cfg.write_text('[train]\nrounds = 2\n[sparsity]\nname = "magnitude"\nend_round = 5\n')
    assert main(["run", str(cfg), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sparsity.end_round (5) is after train.rounds (2)" in err


def test_a_deployed_client_rebuilds_the_servers_mask_from_the_wire(
    tiny_config: RunConfig,
) -> None:
    """A deployment's server and client build the same state; the client loads the mask a
    task carries. By hand, at sparsity 0.8 after round 3 with weights 1..11: the first
    weight (6) loses floor(4.8) = 4, values 1-4; the second (2) floor(1.6) = 1, value 9.
    Over the 8 prunable coordinates the kept bits are 0000 11 01: a 1-byte bitmap (3
    positions would take 12), after the tag byte 0."""
    cfg = sparse_config(tiny_config)
    server = sparse_training_for(cfg, tiny_model(), None, 20, None, 0.0, deployed=True)  # type: ignore[arg-type]
    client = sparse_training_for(cfg, tiny_model(), None, 1, None, 0.0, deployed=True)  # type: ignore[arg-type]
    assert server is not None and client is not None
    server.after_aggregation(3, torch.arange(1.0, 12.0))
    data = server.encoded_mask()
    assert data == bytes([0, 0b00001101]) and len(data) == server.mask_bytes
    client.load_mask(client.decode_mask(data), server.version)
    kept = [False] * 4 + [True] * 4 + [False] + [True] * 2
    assert client.mask.tolist() == kept and client.version == 1 and client.kept == 6
    with pytest.raises(ValueError, match="a mask bitmap of 2 bytes for 8 prunable weights"):
        client.decode_mask(bytes([0, 1, 2]))


# --- structured: whole units -------------------------------------------------------------


def unit_model() -> nn.Sequential:
    """3 -> 4 -> 2: weight (12), bias (4), weight (8), bias (2): 26 coordinates."""
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def test_the_smallest_norm_units_are_pruned_with_their_rows_and_columns() -> None:
    model = unit_model()
    layout = prunable_layout(model)
    pruner = ChannelPruner(model, layout, lambda m: 0.0)
    params = torch.zeros(26)
    # unit j's incoming weights and bias: norms 5, 1, 4, 2 (3-4-0, 1-0-0, 0-4-0, 0-0-2)
    params[0:12] = torch.tensor([3, 4, 0, 1, 0, 0, 0, 4, 0, 0, 0, 2], dtype=torch.float32)
    params[12:16] = torch.tensor([0, 0, 0, 0])
    params[16:26] = 1.0
    mask = pruner.mask_at(params, 0.5)  # floor(0.5 x 4) = 2 units: the norms 1 and 2
    pruner.load_mask(mask)
    assert pruner.keep[0].tolist() == [0, 2]
    # unit 0 and 2's rows (0-2, 6-8), biases (12, 14); the class layer's columns 0 and 2 of
    # each of its 2 rows (16, 18, 20, 22) and both its biases (24, 25)
    expected = [0, 1, 2, 6, 7, 8, 12, 14, 16, 18, 20, 22, 24, 25]
    assert torch.nonzero(mask).flatten().tolist() == expected
    assert pruner.indices.tolist() == expected
    assert pruner.mask_bytes() == 1 + 1  # 4 hidden units: one byte of bits, one tag


def test_the_pruned_model_computes_what_the_masked_dense_one_does() -> None:
    torch.manual_seed(0)
    # the digits CNN: 8x8 images, convs, pooling, a flatten into the linear head
    from greenfl.models.builtin import cnn

    model = cnn((64,), 10)
    layout = prunable_layout(model)
    pruner = ChannelPruner(model, layout, lambda m: 0.0)
    params = get_flat(model)
    pruner.load_mask(pruner.mask_at(params, 0.5))
    masked = params.masked_fill(~pruner.mask_of(pruner.indices), 0.0)
    x = torch.randn(5, 64)
    set_flat(model, masked)
    set_flat(pruner.module, params[torch.from_numpy(pruner.indices)])
    with torch.no_grad():
        assert torch.allclose(pruner.module(x), model(x), atol=1e-6)
    convs = [m for m in pruner.module if isinstance(m, nn.Conv2d)]
    full = [m for m in model if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [c.out_channels // 2 for c in full]


def test_a_model_with_layers_it_cannot_cut_is_refused() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    with pytest.raises(ConfigError, match=r"cannot prune through layer 1 \(LayerNorm\)"):
        ChannelPruner(model, prunable_layout(model), lambda m: 0.0)
    lstm = nn.LSTM(2, 3)
    with pytest.raises(ConfigError, match="not a LSTM"):
        ChannelPruner(lstm, prunable_layout(lstm), lambda m: 0.0)


def test_structured_runs_count_the_smaller_model(tiny_config: RunConfig, tmp_path: Path) -> None:
    cfg = sparse_config(tiny_config, **{"sparsity.target": 0.5, "sparsity.structured": True})
    greenfl.run(cfg, tmp_path / "units")
    got = rows(
        tmp_path / "units",
        "SELECT round, density, bytes_up, bytes_down, flops, num_samples FROM client_rounds",
    )
    # 0.5 x (1 - (1/2)^3) = 0.4375 after round 2: floor(28) of 64 units go, 36 stay; 32
    # after round 3. The MLP at h hidden units: 75 h + 10 parameters, 316 h FLOPs a sample
    hidden = {1: 64, 2: 64, 3: 36, 4: 32}
    for rnd, density, up, down, flops, samples in got:
        h = hidden[rnd]
        assert density == pytest.approx((75 * h + 10) / NUMEL, rel=1e-12)
        assert up == 4 * (75 * h + 10)
        # the mask: one bit per hidden unit (8 bytes) and the tag, new in rounds 3 and 4
        assert down == 4 * (75 * h + 10) + (1 + 8 if rnd >= 3 else 0)
        assert flops == pytest.approx(316 * h * samples, rel=1e-12)  # the FLOPs really fall


def param_count(module: nn.Module) -> float:
    return float(sum(p.numel() for p in module.parameters()))


def test_a_structured_mask_resumes_to_the_same_model() -> None:
    model = unit_model()
    layout = prunable_layout(model)

    def build() -> SparseTraining:
        # a stand-in FLOP counter: the module's parameter count
        pruner = ChannelPruner(model, layout, param_count)
        return SparseTraining(model, layout, PruneSchedule(0.5, 1, 1), 3, len, 99.0, pruner)

    a = build()
    a.after_aggregation(1, torch.linspace(-1, 1, 26))
    assert a.version == 1 and a.kept == 14 and a.flops_per_sample == 14.0
    b = build()
    b.load_state_dict(a.state_dict())
    assert torch.equal(b.mask, a.mask) and b.flops_per_sample == 14.0
    assert b.channels is not None and b.channels.keep[0].tolist() == a.channels.keep[0].tolist()
    # an unstructured mask is not one of whole units: refused in one line
    state = a.state_dict()
    bits = a.mask.clone()
    bits[1] = False
    state["mask_bits"] = np.packbits(bits.numpy())
    with pytest.raises(LedgerError, match="does not fit this run"):
        build().load_state_dict(state)
