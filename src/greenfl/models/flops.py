"""FLOPs of local training, counted from a real forward and backward pass of the model."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def training_flops_per_sample(
    model: nn.Module, input_shape: tuple[int, ...], num_classes: int, batch_size: int = 16
) -> float:
    """FLOPs of one forward+backward pass per sample, as torch's FlopCounterMode counts
    them on a real batch (matmuls and convolutions; elementwise ops are negligible)."""
    x = torch.randn(batch_size, *input_shape)
    y = torch.randint(0, num_classes, (batch_size,))
    counter = FlopCounterMode(display=False)
    # A copy so that counting never touches the caller's gradients.
    probe = copy.deepcopy(model)
    with counter:
        loss = nn.functional.cross_entropy(probe(x), y)
        loss.backward()
    return counter.get_total_flops() / batch_size
