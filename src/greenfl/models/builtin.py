"""Built-in models. Any torch.nn.Module works through the Python API; these are the ones
a config can name."""

from __future__ import annotations

import torch
from pydantic import Field, field_validator
from torch import nn

from greenfl.core.registry import NoParams, params

MAX_WIDTH = 65_536
MAX_LAYERS = 64
MAX_HIDDEN_WEIGHTS = 200_000_000  # 800 MB of float32, before inputs and outputs


@params
class MlpParams:
    hidden: list[int] = Field(
        default_factory=lambda: [64], description="widths of the hidden layers"
    )

    @field_validator("hidden")
    @classmethod
    def _bounded(cls, v: list[int]) -> list[int]:
        if any(h < 1 for h in v):
            raise ValueError("every hidden layer width must be >= 1")
        if any(h > MAX_WIDTH for h in v) or len(v) > MAX_LAYERS:
            # A width of 2e9 would allocate hundreds of GB before anything could fail.
            raise ValueError(f"at most {MAX_LAYERS} hidden layers of width <= {MAX_WIDTH}")
        between = sum(a * b for a, b in zip(v, v[1:], strict=False))
        if between > MAX_HIDDEN_WEIGHTS:
            raise ValueError(
                f"{between} weights between hidden layers, more than {MAX_HIDDEN_WEIGHTS}"
            )
        return v


class Mlp:
    """A multilayer perceptron with ReLU between layers."""

    Params = MlpParams

    @staticmethod
    def build(input_shape: tuple[int, ...], num_classes: int, params: MlpParams) -> nn.Module:
        return mlp(input_shape, num_classes, list(params.hidden))


class Cnn:
    """Two conv+pool blocks and a linear head (see ``cnn``)."""

    Params = NoParams

    @staticmethod
    def build(input_shape: tuple[int, ...], num_classes: int, params: NoParams) -> nn.Module:
        return cnn(input_shape, num_classes)


def mlp(input_shape: tuple[int, ...], num_classes: int, hidden: list[int]) -> nn.Module:
    in_features = 1
    for d in input_shape:
        in_features *= d
    layers: list[nn.Module] = [nn.Flatten()] if len(input_shape) > 1 else []
    for width in hidden:
        layers += [nn.Linear(in_features, width), nn.ReLU()]
        in_features = width
    layers.append(nn.Linear(in_features, num_classes))
    return nn.Sequential(*layers)


def cnn(
    input_shape: tuple[int, ...], num_classes: int, hidden: list[int] | None = None
) -> nn.Module:
    """Two conv+pool blocks and a linear head. 5x5 kernels on 28x28 inputs (the classic
    LeNet-style FL CNN, 18,378 parameters); 3x3 padded kernels on small inputs such as 8x8
    digits, where 5x5 would consume the image."""
    if len(input_shape) == 1:
        side = int(round(input_shape[0] ** 0.5))
        if side * side != input_shape[0]:
            raise ValueError(f"cnn needs square images, got {input_shape[0]} features")
        shape = (1, side, side)
    else:
        shape = input_shape
    channels, side = shape[0], shape[-1]
    k, pad = (5, 0) if side >= 20 else (3, 1)
    body = nn.Sequential(
        nn.Unflatten(1, shape) if len(input_shape) == 1 else nn.Identity(),
        nn.Conv2d(channels, 16, k, padding=pad),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, k, padding=pad),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
    )
    with torch.no_grad():
        flat = body(torch.zeros(1, *input_shape)).shape[1]
    return nn.Sequential(*body, nn.Linear(flat, num_classes))
