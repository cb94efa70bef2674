"""Width-scaled sub-models on the wire (docs/submodels.md, "In a deployment"). A task of
width ``w`` carries only the width's slice of the global model, as the sub-model's own
tensors, and its update is the slice's delta. Server and client cut the same slice of the
same model (``greenfl.submodel.plan.submodel``), so both know, for each width, where the
slice sits in the full flat vector, the tensors it travels as, and what it costs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from greenfl.core.errors import UpdateRejected
from greenfl.core.params import ParamSpec
from greenfl.submodel.plan import submodel


@dataclass(frozen=True)
class WidthSlice:
    """One width's slice of the global model as it travels: ``indices`` (int64, strictly
    increasing) are its positions in the full flat vector, ``spec`` the sub-model's own
    tensors (the full model's names, narrowed shapes), ``flops_per_sample`` the
    sub-model's counted training FLOPs per sample."""

    width: float
    indices: torch.Tensor
    spec: ParamSpec
    flops_per_sample: float

    def take(self, full_flat: torch.Tensor) -> torch.Tensor:
        """The slice of ``full_flat`` (the sub-model's own flat vector)."""
        return full_flat[self.indices]


def cut(model: nn.Module, width: float) -> tuple[nn.Module, torch.Tensor, ParamSpec]:
    """``model``'s width-``width`` sub-model, its slice's positions in the full flat vector
    and its own tensors."""
    built = submodel(model, width)
    return built.module, torch.from_numpy(built.slice.indices), ParamSpec.of(built.module)


def wire_slices(
    model: nn.Module, flops_per_sample: Mapping[float, float]
) -> dict[float, WidthSlice]:
    """Each width's slice of ``model``, by width; ``flops_per_sample``: each width's
    counted training FLOPs per sample (the run's width costs)."""
    out = {}
    for width, flops in flops_per_sample.items():
        _, indices, spec = cut(model, width)
        out[float(width)] = WidthSlice(float(width), indices, spec, float(flops))
    return out


def slice_for(width: float, slices: Mapping[float, WidthSlice]) -> WidthSlice:
    """The slice of a task's ``width``; UpdateRejected naming the run's widths if the run
    trains no such width."""
    found = slices.get(width)
    if found is None:
        raise UpdateRejected(
            f"sub-model width {width:g} is not one of the run's ({_listed(slices)})"
        )
    return found


def _listed(widths: Iterable[float]) -> str:
    return ", ".join(f"{w:g}" for w in sorted(widths, reverse=True))
