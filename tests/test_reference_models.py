"""The benchmark models: parameter counts and training FLOPs against hand counts, the
auto trainer's choice, and vectorised training equal to sequential where it is allowed."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch import nn

from greenfl.clients.trainer import SequentialTrainer
from greenfl.clients.vectorised import VectorisedTrainer, auto_trainer, unsupported_reason
from greenfl.config import build_config
from greenfl.core.messages import FitInstructions
from greenfl.core.params import get_flat
from greenfl.data import DATASETS
from greenfl.data.base import ArrayDataset, Partition
from greenfl.factories import build_model_for, dataset_for
from greenfl.models import build_model
from greenfl.models.flops import lstm_training_flops, training_flops_per_sample
from tests.tolerance import SAME_UPDATE_REL, assert_close_to_scale


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _conv(out_hw: int, c_out: int, c_in: int, k: int) -> int:
    return 2 * out_hw * out_hw * c_out * c_in * k * k  # one multiply-add = 2 FLOPs


def test_parameter_counts_match_the_papers_architectures() -> None:
    # femnist: conv 1->32, 32->64 (5x5), dense 7*7*64 -> 2048 -> 62
    femnist = (25 * 32 + 32) + (25 * 32 * 64 + 64) + (3136 * 2048 + 2048) + (2048 * 62 + 62)
    assert _params(build_model("femnist_cnn", (1, 28, 28), 62)) == femnist == 6_603_710
    # the same model from LEAF's flat 784-pixel rows
    assert _params(build_model("femnist_cnn", (784,), 62)) == femnist
    # char-LSTM: embedding 80x8, LSTM 8->256 and 256->256 (torch keeps two bias vectors)
    lstm = 4 * 256 * (8 + 256) + 2 * 4 * 256 + 4 * 256 * (256 + 256) + 2 * 4 * 256
    assert _params(build_model("char_lstm", (80,), 80)) == 80 * 8 + lstm + 256 * 80 + 80
    cifar = (75 * 32 + 32) + (25 * 32 * 64 + 64) + (4096 * 512 + 512) + (512 * 10 + 10)
    assert _params(build_model("cifar_cnn", (3, 32, 32), 10)) == cifar == 2_156_490
    # resnet20: bias-free 3x3 convs, GroupNorm (2 params per channel), two 1x1 projections
    convs = 27 * 16 + 6 * 144 * 16 + (144 * 32 + 5 * 288 * 32) + (288 * 64 + 5 * 576 * 64)
    projections = 16 * 32 + 32 * 64
    norms = 2 * (16 + 6 * 16 + 6 * 32 + 6 * 64 + 32 + 64)
    resnet = convs + projections + norms + 64 * 10 + 10
    assert _params(build_model("resnet20", (3, 32, 32), 10)) == resnet


def test_conv_models_training_flops_equal_hand_counts() -> None:
    # training = 3x forward (forward, input gradient, weight gradient), except that the
    # first layer needs no input gradient: 2x there
    f1, f2 = _conv(28, 32, 1, 5), _conv(14, 64, 32, 5)
    femnist = 3 * (f1 + f2 + 2 * 3136 * 2048 + 2 * 2048 * 62) - f1
    got = training_flops_per_sample(build_model("femnist_cnn", (1, 28, 28), 62), (1, 28, 28), 62)
    assert got == femnist
    c1, c2 = _conv(32, 32, 3, 5), _conv(16, 64, 32, 5)
    cifar = 3 * (c1 + c2 + 2 * 4096 * 512 + 2 * 512 * 10) - c1
    model = build_model("cifar_cnn", (3, 32, 32), 10)
    assert training_flops_per_sample(model, (3, 32, 32), 10) == cifar
    stem = _conv(32, 16, 3, 3)
    body = 6 * _conv(32, 16, 16, 3)
    body += _conv(16, 32, 16, 3) + _conv(16, 32, 16, 1) + 5 * _conv(16, 32, 32, 3)
    body += _conv(8, 64, 32, 3) + _conv(8, 64, 32, 1) + 5 * _conv(8, 64, 64, 3)
    resnet = 3 * (stem + body + 2 * 64 * 10) - stem
    model = build_model("resnet20", (3, 32, 32), 10)
    assert training_flops_per_sample(model, (3, 32, 32), 10) == resnet


class _UnrolledLSTM(nn.Module):
    """The char-LSTM written as explicit per-step matmuls, which torch's FLOP registry
    counts op by op: an independent check of the LSTM formula."""

    def __init__(self, vocab: int, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.embedding = nn.Embedding(vocab, 8)
        self.cells = nn.ModuleList([nn.LSTMCell(8, hidden), nn.LSTMCell(hidden, hidden)])
        self.head = nn.Linear(hidden, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embedding(tokens)
        for cell in self.cells:
            h = torch.zeros(x.shape[0], self.hidden, requires_grad=True)
            c = torch.zeros(x.shape[0], self.hidden)
            outs = []
            for t in range(x.shape[1]):
                gates = x[:, t] @ cell.weight_ih.T + h @ cell.weight_hh.T + cell.bias_ih
                i, f, g, o = gates.chunk(4, dim=1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                outs.append(h)
            x = torch.stack(outs, dim=1)
        return self.head(x[:, -1])


def test_char_lstm_flops_count_the_lstm_as_explicit_matmuls_would() -> None:
    model = build_model("char_lstm", (80,), 80)
    counted = training_flops_per_sample(model, (80,), 80)
    unrolled = training_flops_per_sample(_UnrolledLSTM(80, 256), (80,), 80)
    assert counted == pytest.approx(unrolled, rel=1e-9)
    # and by hand: per step 2 * 4H * (I + H) per layer, three passes, plus the head
    hand = 3 * (80 * 2 * 1024 * (8 + 256) + 80 * 2 * 1024 * 512 + 2 * 256 * 80)
    assert counted == hand
    assert lstm_training_flops(nn.LSTM(8, 256, 2), 80) == 3 * 80 * 2 * 1024 * (264 + 512)


def default_model(dataset: str) -> str:
    return DATASETS[dataset].defaults.model


def test_default_models() -> None:
    assert [default_model(d) for d in ("digits", "synthetic", "leaf", "hf")] == ["mlp"] * 4
    assert default_model("shakespeare") == "char_lstm"
    assert default_model("femnist") == "femnist_cnn"
    assert default_model("cifar100") == "cifar_cnn"
    cfg = build_config({})
    assert cfg.model.name == "auto"
    ds = dataset_for(cfg.data, 0)
    assert isinstance(build_model_for(cfg, ds)[0], nn.Linear)  # mlp on digits


def test_auto_trainer_says_why_it_runs_the_lstm_sequentially(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lstm = build_model("char_lstm", (80,), 80)
    assert "LSTM" in (unsupported_reason(lstm) or "")
    with caplog.at_level(logging.INFO, logger="greenfl.clients.vectorised"):
        assert auto_trainer("auto", lstm, 10).name == "sequential"
    assert "LSTM" in caplog.text and "sequential" in caplog.text
    for name in ("femnist_cnn", "cifar_cnn", "resnet20"):
        shape = (1, 28, 28) if name == "femnist_cnn" else (3, 32, 32)
        assert unsupported_reason(build_model(name, shape, 10)) is None, name


def test_auto_trainer_keeps_large_models_sequential(caplog: pytest.LogCaptureFixture) -> None:
    # 6.6M parameters: vectorising buys nothing there (BENCHMARKS.md, W4), so auto says so.
    femnist = build_model("femnist_cnn", (1, 28, 28), 62)
    with caplog.at_level(logging.INFO, logger="greenfl.clients.vectorised"):
        assert auto_trainer("auto", femnist, 10).name == "sequential"
    assert "6,603,710 parameters" in caplog.text
    assert auto_trainer("vectorised", femnist, 10).name == "vectorised"  # asked for: honoured
    assert auto_trainer("auto", build_model("resnet20", (3, 32, 32), 10), 10).name == ("vectorised")


def _images(shape: tuple[int, ...], clients: int, per_client: int, classes: int) -> ArrayDataset:
    rng = np.random.default_rng(0)
    n = clients * per_client
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    y = rng.integers(0, classes, n)
    sizes = [per_client - 3 * (c % 3) for c in range(clients)]  # unequal, partial batches
    starts = np.cumsum([0, *sizes])
    parts = [np.arange(starts[c], starts[c + 1]) for c in range(clients)]
    return ArrayDataset("t", x, y, x[:20], y[:20], Partition.from_lists(parts), shape, classes)


@pytest.mark.parametrize(
    ("name", "shape"),
    [("femnist_cnn", (1, 28, 28)), ("cifar_cnn", (3, 32, 32)), ("resnet20", (3, 32, 32))],
)
def test_vectorised_equals_sequential_on_the_cnns(name: str, shape: tuple[int, ...]) -> None:
    ds = _images(shape, clients=3, per_client=21, classes=10)
    torch.manual_seed(0)
    model = build_model(name, shape, 10)
    g = get_flat(model)
    ins = FitInstructions(1, 8, 0.05)
    seq = SequentialTrainer().train(model, g, ds, [2, 0, 1], ins, 1, 5)
    vec = VectorisedTrainer().train(model, g, ds, [2, 0, 1], ins, 1, 5)
    for a, b in zip(seq, vec, strict=True):
        assert a.client_id == b.client_id and a.steps == b.steps
        assert float(a.delta.abs().max()) > 1e-4  # it trained
        # equal on the scale of the update, not to a fixed 1e-5: float32 conv/matmul sums in
        # another order, and at a ReLU/max-pool tie the other branch (1.4e-4 of the norm seen
        # for cifar_cnn; tests/tolerance.py: SAME_UPDATE_REL 1e-3). A learning rate 1% off
        # moves these updates by 1.2e-2 to 1.2e-1 of their norm.
        assert_close_to_scale(b.delta, a.delta, SAME_UPDATE_REL, f"{name} client {a.client_id}")
