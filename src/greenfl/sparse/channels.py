"""Structured pruning: whole hidden units (a linear layer's outputs, a conv's channels) of
a feed-forward ``nn.Sequential`` (the MLP and the CNNs), by magnitude. A pruned unit
loses its weight row (its incoming weights), its bias and, in the next layer, the column
that reads it; the client trains the smaller dense model that remains, so its FLOPs really
shrink, and are counted at it.

The walk follows the forward pass, as greenfl.submodel.sequential's does for prefixes:
every linear or conv layer but the last (the class layer) is a hidden layer whose units
may be pruned; each layer reads the units its predecessor kept; a flatten after a conv
lays channels out one after another, so channel c of C is features c x F/C .. (c+1) x F/C
of the linear layer after it. Each hidden layer loses floor(sparsity x its units) units,
those whose incoming weights and bias have the smallest L2 norm, a unit pruned before
first (ties to the earlier unit)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from greenfl.core.errors import ConfigError
from greenfl.models.layers import UNIT_PRESERVING
from greenfl.sparse.layout import PrunableLayout
from greenfl.sparse.mask import TAG_BYTES, pruned_count

TAG_UNITS = 3  # a structured mask's tag byte: one bit per hidden unit follows


@dataclass(frozen=True)
class Layer:
    """A linear or conv layer of the model, by its index in the Sequential; ``after_conv``:
    a linear layer whose input is a flattened conv output."""

    index: int
    module: nn.Linear | nn.Conv2d
    hidden: bool
    after_conv: bool


def layers_of(model: nn.Module) -> list[Layer]:
    """The model's parametrised layers in forward order; a ConfigError for a model that is
    not a flat Sequential of linear, conv and parameter-free layers."""
    if not isinstance(model, nn.Sequential):
        raise ConfigError(
            f"structured sparsity prunes units of a feed-forward nn.Sequential (the mlp and "
            f"the cnns), not a {type(model).__name__}"
        )
    found: list[tuple[int, nn.Linear | nn.Conv2d]] = []
    for i, m in enumerate(model):
        if isinstance(m, nn.Linear | nn.Conv2d):
            if isinstance(m, nn.Conv2d) and m.groups != 1:
                raise ConfigError("structured sparsity cannot prune a grouped convolution")
            found.append((i, m))
        elif not isinstance(m, UNIT_PRESERVING):
            raise ConfigError(
                f"structured sparsity cannot prune through layer {i} "
                f"({type(m).__name__}); it prunes sequences of Linear, Conv2d and "
                "parameter-free layers"
            )
    if len(found) < 2:
        raise ConfigError("structured sparsity needs a hidden layer to prune")
    out, prev_conv = [], False
    for k, (i, m) in enumerate(found):
        out.append(Layer(i, m, k < len(found) - 1, isinstance(m, nn.Linear) and prev_conv))
        prev_conv = isinstance(m, nn.Conv2d)
    return out


Keep = dict[int, np.ndarray]
"""Kept output units of each hidden layer (by Sequential index): ascending int64."""


def all_units(layers: list[Layer]) -> Keep:
    return {ly.index: np.arange(_units(ly.module), dtype=np.int64) for ly in layers if ly.hidden}


def _units(m: nn.Linear | nn.Conv2d) -> int:
    return m.out_features if isinstance(m, nn.Linear) else m.out_channels


def _inputs(m: nn.Linear | nn.Conv2d) -> int:
    return m.in_features if isinstance(m, nn.Linear) else m.in_channels


def _axes(layers: list[Layer], keep: Keep) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """(kept output units, kept input positions) of every layer."""
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    prev: tuple[np.ndarray, int] | None = None  # the previous layer's kept units, of how many
    for ly in layers:
        m = ly.module
        units = keep[ly.index] if ly.hidden else np.arange(_units(m), dtype=np.int64)
        if prev is None:
            inputs = np.arange(_inputs(m), dtype=np.int64)
        elif ly.after_conv:
            kept, channels = prev
            per = _inputs(m) // channels  # features per channel after the flatten
            inputs = (kept[:, None] * per + np.arange(per)[None, :]).ravel()
        else:
            inputs = prev[0]
        out[ly.index] = (units, inputs)
        prev = (units, _units(m))
    return out


def channel_keep(
    params: torch.Tensor,
    layout: PrunableLayout,
    layers: list[Layer],
    sparsity: float,
    previous: Keep,
) -> Keep:
    """Each hidden layer's kept units at ``sparsity``: the smallest-norm units pruned, those
    ``previous`` pruned first."""
    seg = {s.name: s for s in layout.segments}
    values = params.detach().to(torch.float64)
    keep: Keep = {}
    for ly in layers:
        if not ly.hidden:
            continue
        n = _units(ly.module)
        sq = torch.zeros(n, dtype=torch.float64)
        for pname in ("weight", "bias"):
            s = seg.get(f"{ly.index}.{pname}")
            if s is not None:
                sq += values[s.offset : s.end].view(n, -1).pow(2).sum(dim=1)
        score = sq.sqrt().numpy()
        score[np.setdiff1d(np.arange(n), previous[ly.index])] = -1.0  # pruned before: first
        order = np.argsort(score, kind="stable")
        keep[ly.index] = np.sort(order[pruned_count(n, sparsity) :]).astype(np.int64)
    return keep


def slice_indices(layout: PrunableLayout, layers: list[Layer], keep: Keep) -> np.ndarray:
    """The kept coordinates in the full flat vector (strictly increasing): every layer's
    weight at (kept outputs x kept inputs [x the kernel]) and bias at its kept outputs."""
    axes = _axes(layers, keep)
    seg = {s.name: s for s in layout.segments}
    parts = []
    for s in layout.segments:
        index, _, pname = s.name.partition(".")
        units, inputs = axes[int(index)]
        if pname == "bias":
            where: tuple[np.ndarray, ...] = (units,)
        else:
            kernel = tuple(np.arange(k) for k in s.shape[2:])
            where = (units, inputs, *kernel)
        flat = np.ravel_multi_index(np.ix_(*where), s.shape).ravel()
        parts.append(seg[s.name].offset + flat)
    return np.concatenate(parts).astype(np.int64)


def keep_from_mask(mask: torch.Tensor, layout: PrunableLayout, layers: list[Layer]) -> Keep:
    """The kept units a structured mask describes: a unit is kept when any of its incoming
    weights is (a snapshot holds the mask only)."""
    seg = {s.name: s for s in layout.segments}
    keep: Keep = {}
    for ly in layers:
        if ly.hidden:
            s = seg[f"{ly.index}.weight"]
            rows = mask[s.offset : s.end].view(_units(ly.module), -1).any(dim=1)
            keep[ly.index] = np.flatnonzero(rows.numpy()).astype(np.int64)
    return keep


def pruned_model(model: nn.Sequential, layers: list[Layer], keep: Keep) -> nn.Sequential:
    """The smaller dense model of the kept units; its flat vector is the full one's at
    ``slice_indices`` (the parameters come in the same order)."""
    small = copy.deepcopy(model)
    for ly in layers:
        units, inputs = _axes(layers, keep)[ly.index]
        m = ly.module
        if isinstance(m, nn.Linear):
            new: nn.Module = nn.Linear(len(inputs), len(units), bias=m.bias is not None)
        else:
            new = nn.Conv2d(
                len(inputs),
                len(units),
                m.kernel_size,  # type: ignore[arg-type]
                stride=m.stride,  # type: ignore[arg-type]
                padding=m.padding,  # type: ignore[arg-type]
                dilation=m.dilation,  # type: ignore[arg-type]
                bias=m.bias is not None,
                padding_mode=m.padding_mode,
            )
        small[ly.index] = new
    return small


def unit_count(layers: list[Layer]) -> int:
    """Hidden units in all: a structured mask's bitmap has one bit per unit."""
    return sum(_units(ly.module) for ly in layers if ly.hidden)


class ChannelPruner:
    """A model's structured pruning state: the kept units, the smaller model they leave,
    its coordinates in the full vector and its counted training FLOPs per sample
    (``flops_of``: the run's FLOP counter on a module)."""

    def __init__(
        self, model: nn.Module, layout: PrunableLayout, flops_of: Callable[[nn.Module], float]
    ) -> None:
        self.model = model
        self.layout = layout
        self.layers = layers_of(model)
        self.flops_of = flops_of
        self.set_keep(all_units(self.layers))

    def set_keep(self, keep: Keep) -> None:
        self.keep = keep
        assert isinstance(self.model, nn.Sequential)  # layers_of checked it
        self.module = pruned_model(self.model, self.layers, keep)
        self.indices = slice_indices(self.layout, self.layers, keep)
        self.flops_per_sample = self.flops_of(self.module)

    def mask_at(self, params: torch.Tensor, sparsity: float) -> torch.Tensor:
        """The flat mask (True: kept) of the units kept at ``sparsity``."""
        keep = channel_keep(params, self.layout, self.layers, sparsity, self.keep)
        return self.mask_of(slice_indices(self.layout, self.layers, keep))

    def mask_of(self, indices: np.ndarray) -> torch.Tensor:
        mask = torch.zeros(self.layout.numel, dtype=torch.bool)
        mask[torch.from_numpy(indices)] = True
        return mask

    def load_mask(self, mask: torch.Tensor) -> None:
        """The state a mask describes (a new mask, or one a snapshot restores)."""
        self.set_keep(keep_from_mask(mask, self.layout, self.layers))
        if not torch.equal(self.mask_of(self.indices), mask):
            raise ValueError("the sparsity mask is not one of whole units of this model")

    def mask_bytes(self) -> int:
        """A structured mask on the wire: one bit per hidden unit, and the tag byte."""
        return TAG_BYTES + -(-unit_count(self.layers) // 8)

    def encode_mask(self) -> bytes:
        """The kept units on the wire (``mask_bytes`` long): the tag byte, then one bit per
        hidden unit (1: kept), the hidden layers in forward order (numpy.packbits order)."""
        bits = [np.isin(np.arange(_units(ly.module)), self.keep[ly.index]) for ly in self.hidden]
        return bytes([TAG_UNITS]) + np.packbits(np.concatenate(bits)).tobytes()

    def decode_mask(self, data: bytes) -> torch.Tensor:
        """The flat mask (True: kept) ``encode_mask`` wrote; ValueError if it does not fit
        this model's hidden units (a wrong tag or length, a layer left without a unit)."""
        n = unit_count(self.layers)
        if len(data) != self.mask_bytes() or data[0] != TAG_UNITS:
            raise ValueError(
                f"a structured sparsity mask is the tag {TAG_UNITS} and {-(-n // 8)} bytes "
                f"of unit bits; got {len(data)} bytes"
            )
        bits = np.unpackbits(np.frombuffer(data[1:], dtype=np.uint8), count=n).astype(bool)
        keep: Keep = {}
        at = 0
        for ly in self.hidden:
            units = _units(ly.module)
            keep[ly.index] = np.flatnonzero(bits[at : at + units]).astype(np.int64)
            at += units
            if keep[ly.index].size == 0:
                raise ValueError(f"a structured sparsity mask keeps no unit of layer {ly.index}")
        return self.mask_of(slice_indices(self.layout, self.layers, keep))

    @property
    def hidden(self) -> list[Layer]:
        return [ly for ly in self.layers if ly.hidden]
