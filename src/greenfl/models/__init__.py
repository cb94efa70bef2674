"""Built-in models and FLOP counting. A model is one entry in MODELS."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from greenfl.models.builtin import cnn, mlp
from greenfl.models.flops import training_flops_per_sample

MODELS: dict[str, Callable[[tuple[int, ...], int, list[int]], nn.Module]] = {
    "mlp": mlp,
    "cnn": cnn,
}


def build_model(
    name: str, input_shape: tuple[int, ...], num_classes: int, hidden: list[int]
) -> nn.Module:
    return MODELS[name](input_shape, num_classes, hidden)


__all__ = ["MODELS", "build_model", "cnn", "mlp", "training_flops_per_sample"]
