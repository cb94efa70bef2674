"""FLOPs of local training, counted from a real forward and backward pass of the model."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry


class _FlopCounter(TorchDispatchMode):
    """Sums torch's own per-operator FLOP formulas (the registry FlopCounterMode uses: matmuls
    and convolutions, forward and backward) over every aten op that runs inside it.

    Not FlopCounterMode itself: entering any stock dispatch mode imports torch._dynamo on
    first use (about a second of start-up that a run otherwise never needs)."""

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # no dynamo wrapper around __torch_dispatch__: nothing here compiles

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        count = flop_registry.get(func._overloadpacket)
        if count is not None:
            self.flops += int(count(*args, **kwargs, out_val=out))
        return out


def training_flops_per_sample(
    model: nn.Module, input_shape: tuple[int, ...], num_classes: int, batch_size: int = 16
) -> float:
    """FLOPs of one forward+backward pass per sample, as torch's FLOP formulas count them on
    a real batch (matmuls and convolutions; elementwise ops are negligible)."""
    x = torch.randn(batch_size, *input_shape)
    y = torch.randint(0, num_classes, (batch_size,))
    # A copy so that counting never touches the caller's gradients.
    probe = copy.deepcopy(model)
    with _FlopCounter() as counter:
        loss = nn.functional.cross_entropy(probe(x), y)
        loss.backward()
    return counter.flops / batch_size
