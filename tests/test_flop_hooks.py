"""LayerFlopCounter (the Flower mod's default FLOP count) against greenfl's exact dispatch
counter and torch's FlopCounterMode on training and evaluation, and against the LSTM
formula by hand."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from greenfl.models.flop_hooks import LayerFlopCounter
from greenfl.models.flops import FlopCounter


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 4 * 4, 10),
    )


def _train(model_fn, x: torch.Tensor, steps: int = 2) -> None:
    torch.manual_seed(0)
    net = model_fn()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    y = torch.randint(0, 10, (x.shape[0],))
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    with torch.no_grad():  # an evaluation pass: forward only
        net(x)


def test_layer_counter_equals_the_exact_counters_on_mlp_and_cnn() -> None:
    cases = [
        (lambda: nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)),
         torch.randn(8, 64)),
        (_cnn, torch.randn(4, 1, 12, 12)),
    ]
    for model_fn, x in cases:
        with LayerFlopCounter() as layers:
            _train(model_fn, x)
        with FlopCounter() as exact:
            _train(model_fn, x)
        with FlopCounterMode(display=False) as torch_count:
            _train(model_fn, x)
        assert layers.flops == exact.flops == torch_count.get_total_flops() > 0


def test_layer_counter_prices_an_lstm_by_greenfls_formula() -> None:
    lstm = nn.LSTM(8, 16, batch_first=True)
    x = torch.randn(3, 5, 8)
    # by hand: per step 2 * 4H * (I + H) forward = 2*64*24 = 3072; 5 steps; training 3x
    forward_per_sample = 5 * 3072
    with LayerFlopCounter() as c:
        lstm(x)[0].sum().backward()
    assert c.flops == 3 * (3 * forward_per_sample)  # batch of 3, forward and backward
    with LayerFlopCounter() as c, torch.no_grad():
        lstm(x)
    assert c.flops == 3 * forward_per_sample
