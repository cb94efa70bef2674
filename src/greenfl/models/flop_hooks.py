"""FLOPs counted from the layers a model calls, for code greenfl does not run itself (a
Flower ClientApp's training): a global forward hook prices each Linear, convolution and
LSTM call with the formulas greenfl's exact counter (greenfl.models.flops) uses, and its
backward pass at the time of the forward. About one Python call per layer call instead of
one per tensor operation: cheap enough to run around every round of every client.

What it counts: the matmuls and convolutions of ``nn.Linear``, ``nn.Conv1d/2d/3d`` (and
transposed) and ``nn.LSTM`` layers. A layer called with gradients enabled is counted with
its backward pass: the weight's gradient, and the input's where the input requires one
(the first layer's never does), as torch's formulas count them. Functional matmuls outside
such layers (attention's ``bmm``) are not seen: count those exactly (``FlopCounter``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd
from torch.utils.flop_counter import conv_flop_count

from greenfl.models.flops import lstm_training_flops


class LayerFlopCounter:
    """``with LayerFlopCounter() as c: train(...); c.flops``."""

    def __init__(self) -> None:
        self.flops = 0
        self._handle: Any = None

    def __enter__(self) -> LayerFlopCounter:
        self._handle = nn.modules.module.register_module_forward_hook(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.remove()

    def _hook(self, module: nn.Module, args: tuple, out: Any) -> None:
        if not args or not isinstance(args[0], torch.Tensor):
            return
        x = args[0]
        if isinstance(module, nn.Linear):
            rows = x.numel() // max(x.shape[-1], 1)  # every leading dimension is a batch
            forward = 2 * rows * module.in_features * module.out_features
        elif isinstance(module, _ConvNd):
            forward = int(
                conv_flop_count(
                    list(x.shape), list(module.weight.shape), list(out.shape), module.transposed
                )
            )
        elif isinstance(module, nn.LSTM):
            self.flops += _lstm_flops(module, x, out)
            return
        else:
            return
        self.flops += forward * _passes(x, module.weight, out)


def _passes(x: torch.Tensor, weight: torch.Tensor, out: Any) -> int:
    """1 (the forward), plus the backward's input and weight gradients where autograd will
    compute them."""
    y = out[0] if isinstance(out, tuple) else out
    if not (torch.is_grad_enabled() and isinstance(y, torch.Tensor) and y.requires_grad):
        return 1
    return 1 + int(x.requires_grad) + int(weight.requires_grad)


def _lstm_flops(lstm: nn.LSTM, x: torch.Tensor, out: Any) -> int:
    """greenfl's LSTM formula (torch's registry has no formula for the fused CPU op): per
    sample, 3x the forward when trained, the forward alone otherwise."""
    if x.dim() == 2:  # unbatched (seq, features)
        batch, seq_len = 1, int(x.shape[0])
    elif lstm.batch_first:
        batch, seq_len = int(x.shape[0]), int(x.shape[1])
    else:
        batch, seq_len = int(x.shape[1]), int(x.shape[0])
    training = lstm_training_flops(lstm, seq_len)
    y = out[0] if isinstance(out, tuple) else out
    trained = torch.is_grad_enabled() and isinstance(y, torch.Tensor) and y.requires_grad
    return batch * (training if trained else training // 3)
