"""What a client's width costs: training FLOPs per sample of the sub-model it trains
(counted by ``greenfl.models.flops`` on the built sub-model), its parameters, and the
bytes of its slice on the wire (float32, before any codec)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from torch import nn

from greenfl.models.flops import forward_flops_per_sample, training_flops_per_sample
from greenfl.submodel.plan import submodel
from greenfl.submodel.widths import check_width

FLOAT32_BYTES = 4


@dataclass(frozen=True)
class SubmodelCost:
    width: float
    num_params: int
    bytes_down: int  # the slice of the global model sent to the client, float32
    bytes_up: int  # its delta, float32 and uncompressed (a codec shrinks it further)
    train_flops_per_sample: float  # forward + backward of the sub-model
    forward_flops_per_sample: float  # evaluation of the sub-model


def submodel_cost(
    model: nn.Module,
    width: float,
    input_shape: tuple[int, ...],
    num_classes: int,
    batch_size: int = 16,
) -> SubmodelCost:
    """The counted costs of training ``model``'s width-``width`` sub-model."""
    built = submodel(model, check_width(width))
    numel = built.slice.numel
    return SubmodelCost(
        width=built.slice.width,
        num_params=numel,
        bytes_down=FLOAT32_BYTES * numel,
        bytes_up=FLOAT32_BYTES * numel,
        train_flops_per_sample=training_flops_per_sample(
            built.module, input_shape, num_classes, batch_size
        ),
        forward_flops_per_sample=forward_flops_per_sample(
            built.module, input_shape, num_classes, batch_size
        ),
    )


def submodel_costs(
    model: nn.Module,
    widths: Iterable[float],
    input_shape: tuple[int, ...],
    num_classes: int,
    batch_size: int = 16,
) -> dict[float, SubmodelCost]:
    """``submodel_cost`` of each width, by width."""
    return {
        check_width(w): submodel_cost(model, w, input_shape, num_classes, batch_size)
        for w in widths
    }
