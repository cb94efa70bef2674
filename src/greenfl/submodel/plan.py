"""A width-r sub-model of a full model, and where its flat parameter vector sits in the
full one.

``slice_of(model, width)`` plans the slice: each layer's narrowed twin (the family's
rule: ``greenfl.submodel.sequential``, ``greenfl.submodel.lstm``) and the positions of its
parameters in the full flat vector (``greenfl.core.params`` order). The positions are
strictly increasing, so ``full_flat[indices]`` is the sub-model's own flat vector in its
own order, and a delta trained on it goes back with ``full[indices] += delta``."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from greenfl.core.errors import ConfigError, UpdateRejected
from greenfl.core.params import ParamSpec, get_flat, set_flat
from greenfl.models.reference import CharLSTM
from greenfl.submodel.layers import Narrowed, first
from greenfl.submodel.lstm import plan_char_lstm
from greenfl.submodel.sequential import plan_sequential
from greenfl.submodel.supported import SUPPORTED_MODELS, check_model
from greenfl.submodel.widths import check_width

Planner = Callable[[nn.Module, float], dict[str, Narrowed]]

# A model family is its module type and the planner that slices it; the first match wins.
FAMILIES: tuple[tuple[type[nn.Module], Planner], ...] = (
    (CharLSTM, plan_char_lstm),
    (nn.Sequential, plan_sequential),
)


@dataclass(frozen=True, eq=False)  # equality of arrays is elementwise; compare indices
class Slice:
    """The width-``width`` slice of a model whose flat vector has ``full_numel`` entries:
    ``indices`` (strictly increasing int64) are the sub-model's coordinates in it."""

    width: float
    indices: np.ndarray
    full_numel: int

    @property
    def numel(self) -> int:
        return int(self.indices.size)

    @property
    def is_full(self) -> bool:
        return self.numel == self.full_numel

    def take(self, full_flat: torch.Tensor) -> torch.Tensor:
        """The sub-model's flat vector: ``full_flat[indices]`` (a copy)."""
        return sub_params(full_flat, self.indices)

    def scatter_add(self, full_flat: torch.Tensor, sub_delta: torch.Tensor) -> torch.Tensor:
        """``full_flat`` with ``sub_delta`` added at the slice (a new tensor)."""
        return scatter_delta(full_flat, self.indices, sub_delta)

    def expand(self, sub_delta: torch.Tensor) -> torch.Tensor:
        """``sub_delta`` as a full-length vector, zero where the slice has no coordinate."""
        return expand_delta(self.indices, sub_delta, self.full_numel)


def _planner(model: nn.Module) -> Planner:
    for kind, planner in FAMILIES:
        if isinstance(model, kind):
            return planner
    raise ConfigError(
        f"sub-models of a {type(model).__name__} are not supported; supported models: "
        + ", ".join(SUPPORTED_MODELS)
    )


def _plan(model: nn.Module, width: float) -> dict[str, Narrowed]:
    return _planner(model)(model, check_width(width))


def _kept_axes(
    plan: dict[str, Narrowed], name: str, shape: tuple[int, ...]
) -> tuple[np.ndarray, ...]:
    """The kept positions along each axis of the full parameter ``name``."""
    owner, _, local = name.rpartition(".")
    narrowed = plan.get(owner)
    return narrowed.axes[local] if narrowed else tuple(first(n) for n in shape)


def _indices(model: nn.Module, plan: dict[str, Narrowed]) -> np.ndarray:
    """Positions in the full flat vector of every parameter the plan keeps, in the order
    the sub-model's own flat vector lists them."""
    parts, offset = [], 0
    for name, param in model.named_parameters():
        shape = tuple(param.shape)
        axes = _kept_axes(plan, name, shape)
        grid = np.ravel_multi_index(np.ix_(*axes), shape) if shape else np.zeros(1, np.int64)
        parts.append(offset + np.asarray(grid, dtype=np.int64).ravel())
        offset += param.numel()
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def slice_of(model: nn.Module, width: float) -> Slice:
    """The width-``width`` slice of ``model`` (no sub-model is built)."""
    indices = _indices(model, _plan(model, width))
    return Slice(check_width(width), indices, ParamSpec.of(model).numel)


def slice_indices(model: nn.Module, width: float) -> np.ndarray:
    """Positions in ``model``'s flat vector of the width-``width`` sub-model's flat
    vector: ``sub_flat = full_flat[indices]``. Width 1 gives ``arange(numel)``."""
    return slice_of(model, width).indices


def width_slices(model: nn.Module, widths: Iterable[float]) -> dict[float, Slice]:
    """The slice of each width, by width."""
    return {check_width(w): slice_of(model, w) for w in widths}


@dataclass(frozen=True)
class SubModel:
    """A built sub-model and its slice of the full model."""

    module: nn.Module
    slice: Slice


def submodel(model: nn.Module, width: float) -> SubModel:
    """The width-``width`` sub-model of ``model`` (a new, trainable module of the same
    class and parameter names) holding the full model's weights at its slice."""
    plan = _plan(model, width)
    sub = copy.deepcopy(model)
    for name, narrowed in plan.items():
        sub.set_submodule(name, narrowed.module)
    piece = Slice(check_width(width), _indices(model, plan), ParamSpec.of(model).numel)
    full_spec, sub_spec = ParamSpec.of(model), ParamSpec.of(sub)
    kept_shapes = tuple(
        tuple(int(a.size) for a in _kept_axes(plan, n, shape))
        for n, shape in zip(full_spec.names, full_spec.shapes, strict=True)
    )
    if sub_spec.names != full_spec.names or sub_spec.shapes != kept_shapes:
        # A model whose parameters are not where its modules say (shared or re-registered
        # weights): its slice would silently mix coordinates.
        raise ConfigError(f"{type(model).__name__}: its sub-model's parameters do not line up")
    set_flat(sub, get_flat(model)[torch.from_numpy(piece.indices)])
    return SubModel(sub, piece)


def build_submodel(
    model: nn.Module | str,
    width: float,
    *,
    input_shape: tuple[int, ...] | None = None,
    num_classes: int | None = None,
) -> nn.Module:
    """The width-``width`` sub-model of ``model``: a full model, or a supported model's
    name (then built fresh for ``input_shape`` and ``num_classes``)."""
    if isinstance(model, str):
        model = _full_model(model, input_shape, num_classes)
    return submodel(model, width).module


def _full_model(
    name: str, input_shape: tuple[int, ...] | None, num_classes: int | None
) -> nn.Module:
    from greenfl.models import build_model  # the registry, only when asked for by name

    check_model(name)
    if input_shape is None or num_classes is None:
        raise ConfigError(f"building {name!r} by name needs input_shape and num_classes")
    return build_model(name, input_shape, num_classes)


def sub_params(full_flat: torch.Tensor, indices: np.ndarray) -> torch.Tensor:
    """The sub-model's flat vector: the full vector at ``indices`` (a copy)."""
    return full_flat[torch.from_numpy(np.asarray(indices, dtype=np.int64))].clone()


def scatter_delta(
    full_flat: torch.Tensor, indices: np.ndarray, sub_delta: torch.Tensor
) -> torch.Tensor:
    """``full_flat`` plus ``sub_delta`` at ``indices`` (a new tensor)."""
    idx = _index(indices, sub_delta)
    out = full_flat.clone()
    out[idx] += sub_delta.to(out.dtype)
    return out


def expand_delta(indices: np.ndarray, sub_delta: torch.Tensor, full_numel: int) -> torch.Tensor:
    """``sub_delta`` placed at ``indices`` of a zero vector of ``full_numel`` entries."""
    idx = _index(indices, sub_delta)
    out = torch.zeros(full_numel, dtype=sub_delta.dtype)
    out[idx] = sub_delta
    return out


def _index(indices: np.ndarray, sub_delta: torch.Tensor) -> torch.Tensor:
    idx = np.asarray(indices, dtype=np.int64)
    if sub_delta.dim() != 1 or sub_delta.numel() != idx.size:
        raise UpdateRejected(
            f"a delta of shape {tuple(sub_delta.shape)} for a slice of {idx.size} coordinates"
        )
    return torch.from_numpy(idx)
