"""Built-in models and FLOP counting. A model is one entry in MODELS."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from greenfl.models.builtin import cnn, mlp
from greenfl.models.flops import forward_flops_per_sample, training_flops_per_sample
from greenfl.models.reference import (
    char_lstm,
    cifar_cnn,
    default_model,
    femnist_cnn,
    resnet20,
)

MODELS: dict[str, Callable[[tuple[int, ...], int, list[int]], nn.Module]] = {
    "mlp": mlp,
    "cnn": cnn,
    "femnist_cnn": femnist_cnn,
    "char_lstm": char_lstm,
    "cifar_cnn": cifar_cnn,
    "resnet20": resnet20,
}


def build_model(
    name: str, input_shape: tuple[int, ...], num_classes: int, hidden: list[int]
) -> nn.Module:
    return MODELS[name](input_shape, num_classes, hidden)


__all__ = [
    "MODELS",
    "build_model",
    "char_lstm",
    "cifar_cnn",
    "cnn",
    "default_model",
    "femnist_cnn",
    "mlp",
    "resnet20",
    "forward_flops_per_sample",
    "training_flops_per_sample",
]
