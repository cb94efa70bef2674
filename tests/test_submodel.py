"""Width-scaled sub-models (greenfl.submodel): slices, ordered-dropout equivalence, costs
and HeteroFL aggregation, against counts and examples worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from greenfl.core.errors import ConfigError, UpdateRejected
from greenfl.core.messages import ClientUpdate
from greenfl.core.params import get_flat, set_flat
from greenfl.models import build_model
from greenfl.models.flops import training_flops_per_sample
from greenfl.strategy.base import Strategy
from greenfl.strategy.fedavg import FedAvg
from greenfl.submodel import SUPPORTED_MODELS, check_model, check_width, units_at
from greenfl.submodel.aggregate import HeteroFL, aggregate_slices
from greenfl.submodel.costs import submodel_cost
from greenfl.submodel.plan import (
    build_submodel,
    expand_delta,
    scatter_delta,
    slice_indices,
    slice_of,
    sub_params,
    submodel,
    width_slices,
)

# Forward passes of a sub-model and of the masked full model add the same products in a
# different order (the full one adds exact zeros too): float32 agrees to about 1e-6.
FORWARD_TOL = 1e-5

SHAPES = {
    "mlp": ((64,), 10),
    "cnn": ((1, 28, 28), 10),
    "femnist_cnn": ((1, 28, 28), 62),
    "cifar_cnn": ((3, 32, 32), 10),
    "resnet20": ((3, 32, 32), 10),
    "char_lstm": ((80,), 80),
}


def _model(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    shape, classes = SHAPES[name]
    return build_model(name, shape, classes)


def _numel(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _masked_full(model: nn.Module, width: float) -> nn.Module:
    """The full model with every coordinate outside the width's slice set to zero: the
    dropped units' weights and biases are zero, so they output zero (ReLU(0) = 0, an LSTM
    unit with zero gates keeps h = 0) and feed nothing onward."""
    idx = torch.from_numpy(slice_indices(model, width))
    flat = get_flat(model)
    masked = torch.zeros_like(flat)
    masked[idx] = flat[idx]
    set_flat(model, masked)
    return model


# --- widths -------------------------------------------------------------------------------


def test_units_at_is_the_ceiling_of_width_times_units() -> None:
    assert units_at(64, 1.0) == 64
    assert units_at(64, 0.5) == 32
    assert units_at(64, 0.25) == 16
    assert units_at(10, 0.55) == 6  # ceil(5.5)
    assert units_at(30, 0.1) == 3  # 0.1 * 30 is 3.0000000000000004 in floats
    assert units_at(3, 0.01) == 1  # at least one unit


@pytest.mark.parametrize("bad", [0.0, -0.5, 1.5, float("nan"), float("inf")])
def test_a_width_outside_0_1_is_refused_by_name(bad: float) -> None:
    with pytest.raises(ConfigError, match="width must be in \\(0, 1\\]"):
        check_width(bad)
    with pytest.raises(ConfigError, match="width"):
        slice_indices(_model("mlp"), bad)


def test_an_unsupported_model_names_the_supported_ones() -> None:
    with pytest.raises(ConfigError, match="supported models: mlp, cnn, femnist_cnn"):
        check_model("lenet")
    with pytest.raises(ConfigError, match="supported models: .*char_lstm"):
        build_submodel(nn.Linear(4, 2), 0.5)
    with pytest.raises(ConfigError, match="cannot slice layer '1'"):
        build_submodel(nn.Sequential(nn.Linear(4, 4), nn.Softmax(dim=1), nn.Linear(4, 2)), 0.5)
    assert set(SUPPORTED_MODELS) == set(SHAPES)


# --- the MLP by hand ------------------------------------------------------------------------


@pytest.mark.parametrize("width, hidden", [(1.0, 64), (0.5, 32), (0.25, 16)])
def test_mlp_parameters_flops_and_bytes_by_hand(width: float, hidden: int) -> None:
    model = _model("mlp")
    params = 64 * hidden + hidden + hidden * 10 + 10
    cost = submodel_cost(model, width, (64,), 10)
    assert cost.num_params == params
    assert _numel(submodel(model, width).module) == params
    assert cost.bytes_down == cost.bytes_up == 4 * params
    # training = 3 x forward (forward, input gradient, weight gradient) of each matmul,
    # 2 FLOPs per multiply-add, less the first layer's input gradient (nothing needs it)
    forward = 2 * (64 * hidden + hidden * 10)
    assert cost.train_flops_per_sample == 3 * forward - 2 * 64 * hidden
    assert cost.forward_flops_per_sample == forward


def test_mlp_slice_positions_by_hand() -> None:
    # 4-[4]-2: W1 (4x4) at 0..15, b1 at 16..19, W2 (2x4) at 20..27, b2 at 28..29
    model = build_model("mlp", (4,), 2, hidden=[4])
    expected = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 20, 21, 24, 25, 28, 29]
    assert slice_indices(model, 0.5).tolist() == expected
    assert slice_indices(model, 0.25).tolist() == [0, 1, 2, 3, 16, 20, 24, 28, 29]
    sub = build_submodel(model, 0.5)
    full = dict(model.named_parameters())
    sub_named = dict(sub.named_parameters())
    torch.testing.assert_close(sub_named["0.weight"], full["0.weight"][:2])
    torch.testing.assert_close(sub_named["2.weight"], full["2.weight"][:, :2])
    torch.testing.assert_close(sub_named["2.bias"], full["2.bias"])


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_width_one_is_the_full_model_itself(name: str) -> None:
    model = _model(name)
    assert np.array_equal(slice_indices(model, 1.0), np.arange(_numel(model)))
    sub = build_submodel(model, 1.0)
    torch.testing.assert_close(get_flat(sub), get_flat(model), rtol=0, atol=0)
    assert type(sub) is type(model)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_slices_are_increasing_and_nested(name: str) -> None:
    model = _model(name)
    half, quarter = slice_indices(model, 0.5), slice_indices(model, 0.25)
    assert np.all(np.diff(half) > 0) and half[-1] < _numel(model)
    # ordered dropout: the narrower model is a part of the wider one
    assert np.isin(quarter, half).all() and quarter.size < half.size < _numel(model)


# --- ordered-dropout equivalence ----------------------------------------------------------


@pytest.mark.parametrize(
    "name, shape, classes",
    [
        ("mlp", (64,), 10),
        ("cnn", (64,), 10),  # 8x8 digits, 3x3 padded kernels
        ("cnn", (1, 28, 28), 10),
        ("cifar_cnn", (3, 32, 32), 10),
    ],
)
@pytest.mark.parametrize("width", [0.5, 0.25, 0.3])
def test_sub_model_forward_is_the_full_forward_with_dropped_units_zeroed(
    name: str, shape: tuple[int, ...], classes: int, width: float
) -> None:
    torch.manual_seed(1)
    model = build_model(name, shape, classes)
    sub = build_submodel(model, width)
    x = torch.randn(5, *shape)
    with torch.no_grad():
        want = _masked_full(model, width)(x)
        got = sub(x)
    assert got.shape == (5, classes)
    torch.testing.assert_close(got, want, rtol=FORWARD_TOL, atol=FORWARD_TOL)
    assert want.abs().max() > 0.01  # not a comparison of zeros


def test_femnist_cnn_half_width_by_hand() -> None:
    model = _model("femnist_cnn")
    # conv 1->16, 16->32 (5x5), dense 7*7*32 -> 1024 -> 62
    params = (25 * 16 + 16) + (25 * 16 * 32 + 32) + (1568 * 1024 + 1024) + (1024 * 62 + 62)
    cost = submodel_cost(model, 0.5, (1, 28, 28), 62)
    assert cost.num_params == params == 1_683_454

    def conv(out_hw: int, c_out: int, c_in: int, k: int) -> int:
        return 2 * out_hw * out_hw * c_out * c_in * k * k

    f1, f2 = conv(28, 16, 1, 5), conv(14, 32, 16, 5)
    assert cost.train_flops_per_sample == 3 * (f1 + f2 + 2 * 1568 * 1024 + 2 * 1024 * 62) - f1


# --- ResNet-20 with GroupNorm -------------------------------------------------------------


def _resnet_params(a: int, b: int, c: int, classes: int = 10) -> int:
    """ResNet-20 with stage widths a, b, c: bias-free convs, 2 GroupNorm parameters per
    channel, 1x1 projections into stages 2 and 3."""
    convs = 27 * a + 6 * 9 * a * a + (9 * a * b + 5 * 9 * b * b) + (9 * b * c + 5 * 9 * c * c)
    projections = a * b + b * c
    norms = 2 * (a + 6 * a + 6 * b + 6 * c + b + c)
    return convs + projections + norms + c * classes + classes


@pytest.mark.parametrize(
    "width, channels", [(1.0, (16, 32, 64)), (0.5, (8, 16, 32)), (0.25, (4, 8, 16))]
)
def test_resnet20_parameters_by_hand(width: float, channels: tuple[int, int, int]) -> None:
    assert slice_of(_model("resnet20"), width).numel == _resnet_params(*channels)


def test_resnet20_group_norm_groups_divide_the_sliced_channels() -> None:
    # width 0.3: 16 -> 5, 32 -> 10, 64 -> 20 channels; groups gcd(2, c): 1, 2, 2
    sub = build_submodel(_model("resnet20"), 0.3)
    assert slice_of(_model("resnet20"), 0.3).numel == _resnet_params(5, 10, 20)
    groups = {m.num_channels: m.num_groups for m in sub.modules() if isinstance(m, nn.GroupNorm)}
    assert groups == {5: 1, 10: 2, 20: 2}


def test_resnet20_sub_model_trains_and_its_delta_scatters_back() -> None:
    model = _model("resnet20")
    built = submodel(model, 0.5)
    full = get_flat(model)
    before = built.slice.take(full)
    torch.testing.assert_close(get_flat(built.module), before, rtol=0, atol=0)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    opt = torch.optim.SGD(built.module.parameters(), lr=0.1)
    loss = nn.functional.cross_entropy(built.module(x), y)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in built.module.parameters())
    opt.step()
    delta = get_flat(built.module) - before
    assert delta.abs().sum() > 0
    new = built.slice.scatter_add(full, delta)
    idx = torch.from_numpy(built.slice.indices)
    torch.testing.assert_close(new[idx], get_flat(built.module))
    untouched = torch.ones(full.numel(), dtype=torch.bool)
    untouched[idx] = False
    assert torch.equal(new[untouched], full[untouched])
    torch.testing.assert_close(built.slice.expand(delta), new - full)


# --- the char-LSTM ------------------------------------------------------------------------


@pytest.mark.parametrize("width, hidden", [(1.0, 256), (0.5, 128), (0.25, 64), (0.3, 77)])
def test_char_lstm_parameters_and_flops_by_hand(width: float, hidden: int) -> None:
    model = _model("char_lstm")
    h = hidden
    # embedding 80x8 kept; layer 1: 4h x (8 + h) and two bias vectors of 4h; layer 2:
    # 4h x (h + h) and two biases; head h -> 80
    params = 80 * 8 + (4 * h * (8 + h) + 8 * h) + (4 * h * 2 * h + 8 * h) + (h * 80 + 80)
    cost = submodel_cost(model, width, (80,), 80)
    assert cost.num_params == params
    # per step per layer 2 x 4h x (input + h) FLOPs, 80 steps, three passes, plus the head
    flops = 3 * (80 * 2 * 4 * h * (8 + h) + 80 * 2 * 4 * h * (h + h) + 2 * h * 80)
    assert cost.train_flops_per_sample == flops


def test_char_lstm_gates_are_sliced_alike() -> None:
    model = _model("char_lstm")
    sub = build_submodel(model, 0.5)
    assert sub.lstm.hidden_size == 128 and sub.lstm.input_size == 8
    # rows of the four gate blocks (i, f, g, o), each the first 128 of its 256
    rows = [g * 256 + j for g in range(4) for j in range(128)]
    for k in range(2):
        full_hh = getattr(model.lstm, f"weight_hh_l{k}")
        torch.testing.assert_close(getattr(sub.lstm, f"weight_hh_l{k}"), full_hh[rows][:, :128])
        torch.testing.assert_close(
            getattr(sub.lstm, f"bias_ih_l{k}"), getattr(model.lstm, f"bias_ih_l{k}")[rows]
        )
    torch.testing.assert_close(sub.lstm.weight_ih_l0, model.lstm.weight_ih_l0[rows])
    torch.testing.assert_close(sub.lstm.weight_ih_l1, model.lstm.weight_ih_l1[rows][:, :128])
    torch.testing.assert_close(sub.embedding.weight, model.embedding.weight)
    torch.testing.assert_close(sub.head.weight, model.head.weight[:, :128])


@pytest.mark.parametrize("width", [0.5, 0.3])
def test_sub_lstm_forward_is_the_full_forward_with_dropped_units_zeroed(width: float) -> None:
    model = _model("char_lstm", seed=2)
    sub = build_submodel(model, width)
    tokens = torch.randint(0, 80, (4, 12))
    with torch.no_grad():
        want = _masked_full(model, width)(tokens)
        got = sub(tokens)
    torch.testing.assert_close(got, want, rtol=FORWARD_TOL, atol=FORWARD_TOL)
    assert want.abs().max() > 0.01


# --- costs through the counter --------------------------------------------------------------


@pytest.mark.parametrize("name", ["cnn", "cifar_cnn", "resnet20"])
def test_costs_of_width_one_are_the_full_models(name: str) -> None:
    model = _model(name)
    shape, classes = SHAPES[name]
    cost = submodel_cost(model, 1.0, shape, classes)
    assert cost.num_params == _numel(model)
    assert cost.train_flops_per_sample == training_flops_per_sample(model, shape, classes)
    half = submodel_cost(model, 0.5, shape, classes)
    # conv FLOPs scale with in x out channels: about a quarter at half width
    assert 0.2 < half.train_flops_per_sample / cost.train_flops_per_sample < 0.3


def test_build_by_name() -> None:
    sub = build_submodel("mlp", 0.5, input_shape=(64,), num_classes=10)
    assert _numel(sub) == 2410
    with pytest.raises(ConfigError, match="needs input_shape and num_classes"):
        build_submodel("mlp", 0.5)
    with pytest.raises(ConfigError, match="'lenet' are not supported"):
        build_submodel("lenet", 0.5, input_shape=(64,), num_classes=10)


# --- HeteroFL aggregation -----------------------------------------------------------------


def _tiny() -> tuple[nn.Module, np.ndarray, np.ndarray]:
    """The 4-[4]-2 MLP (30 parameters) and its width-1 and width-0.5 slices."""
    model = build_model("mlp", (4,), 2, hidden=[4])
    return model, slice_indices(model, 1.0), slice_indices(model, 0.5)


def test_aggregation_averages_each_coordinate_over_those_that_trained_it() -> None:
    _, full_idx, half_idx = _tiny()
    glob = torch.arange(30, dtype=torch.float32)
    a = (full_idx, torch.full((30,), 3.0), 1.0)  # width 1, weight 1
    b = (half_idx, torch.full((16,), 1.0), 2.0)  # width 0.5, weight 2
    c = (half_idx, torch.full((16,), -1.0), 1.0)  # width 0.5, weight 1
    new = aggregate_slices(glob, [a, b, c])
    in_half = np.isin(np.arange(30), half_idx)
    # three clients: (1 x 3 + 2 x 1 + 1 x -1) / 4 = 1; client a alone: 3
    expected = glob.numpy() + np.where(in_half, 1.0, 3.0)
    np.testing.assert_allclose(new.numpy(), expected, rtol=0, atol=1e-6)
    # without the full-width client: (2 x 1 + 1 x -1) / 3 at the slice, the rest untouched
    new = aggregate_slices(glob, [b, c])
    expected = glob.numpy() + np.where(in_half, 1.0 / 3.0, 0.0)
    np.testing.assert_allclose(new.numpy(), expected, rtol=0, atol=1e-6)
    assert new.dtype == torch.float32
    assert torch.equal(aggregate_slices(glob, []), glob)


def test_heterofl_strategy_reads_the_slice_from_the_delta_length() -> None:
    model, _, half_idx = _tiny()
    glob = torch.arange(30, dtype=torch.float32)
    strategy = HeteroFL(width_slices(model, [1.0, 0.5]), full_numel=30)
    assert isinstance(strategy, Strategy)
    updates = [
        ClientUpdate(0, torch.full((30,), 3.0), num_samples=10),
        ClientUpdate(1, torch.full((16,), 1.0), num_samples=20),
        ClientUpdate(2, torch.full((16,), -1.0), num_samples=20, work_fraction=0.5),
    ]
    new = strategy.aggregate(glob, updates)
    in_half = np.isin(np.arange(30), half_idx)
    expected = glob.numpy() + np.where(in_half, (10 * 3 + 20 * 1 - 10) / 40, 3.0)
    np.testing.assert_allclose(new.numpy(), expected, rtol=0, atol=1e-6)
    with pytest.raises(UpdateRejected, match="matches no width slice"):
        strategy.aggregate(glob, [ClientUpdate(0, torch.zeros(17), num_samples=1)])


def test_heterofl_of_full_width_updates_is_fedavg() -> None:
    torch.manual_seed(3)
    glob = torch.randn(30)
    updates = [ClientUpdate(i, torch.randn(30), num_samples=n) for i, n in enumerate([5, 9, 2])]
    model, _, _ = _tiny()
    new = HeteroFL(width_slices(model, [0.5]), full_numel=30).aggregate(glob, updates)
    torch.testing.assert_close(new, FedAvg().aggregate(glob, updates), rtol=1e-6, atol=1e-6)


def test_malformed_sliced_updates_are_rejected() -> None:
    glob = torch.zeros(30)
    with pytest.raises(UpdateRejected, match="strictly increasing"):
        aggregate_slices(glob, [(np.array([1, 0]), torch.ones(2), 1.0)])
    with pytest.raises(UpdateRejected, match="strictly increasing"):
        aggregate_slices(glob, [(np.array([0, 30]), torch.ones(2), 1.0)])
    with pytest.raises(UpdateRejected, match="delta of shape"):
        aggregate_slices(glob, [(np.array([0, 1]), torch.ones(3), 1.0)])
    with pytest.raises(UpdateRejected, match="weight"):
        aggregate_slices(glob, [(np.array([0, 1]), torch.ones(2), -1.0)])


def test_scatter_helpers_by_hand() -> None:
    full = torch.tensor([10.0, 20.0, 30.0, 40.0])
    idx = np.array([0, 2])
    assert sub_params(full, idx).tolist() == [10.0, 30.0]
    assert scatter_delta(full, idx, torch.tensor([1.0, -1.0])).tolist() == [11.0, 20.0, 29.0, 40.0]
    assert expand_delta(idx, torch.tensor([1.0, 2.0]), 4).tolist() == [1.0, 0.0, 2.0, 0.0]
    with pytest.raises(UpdateRejected, match="slice of 2 coordinates"):
        scatter_delta(full, idx, torch.ones(3))
    assert full.tolist() == [10.0, 20.0, 30.0, 40.0]  # never changed in place
