"""Narrowing one layer: a new, smaller layer of the same kind, and for each of its
parameters the positions it keeps along every axis of the full parameter. Ordered
dropout keeps the first units of every axis it cuts; the LSTM keeps the first units of
each of its four gate blocks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from greenfl.core.errors import ConfigError
from greenfl.submodel.widths import groups_at


@dataclass(frozen=True)
class Narrowed:
    """A narrowed layer and, per parameter name local to it (``weight``, ``bias_hh_l0``),
    the kept positions along each axis of the full parameter (ascending int64 arrays)."""

    module: nn.Module
    axes: Mapping[str, tuple[np.ndarray, ...]]


def first(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64)


def narrow_linear(layer: nn.Linear, keep_in: int, keep_out: int) -> Narrowed:
    new = nn.Linear(keep_in, keep_out, bias=layer.bias is not None)
    axes = {"weight": (first(keep_out), first(keep_in))}
    if layer.bias is not None:
        axes["bias"] = (first(keep_out),)
    return Narrowed(new, axes)


def narrow_conv(layer: nn.Conv2d, keep_in: int, keep_out: int) -> Narrowed:
    if layer.groups != 1:
        # A grouped conv ties input to output channels; slicing both by prefix would
        # change which inputs each output sees.
        raise ConfigError(f"cannot slice a grouped convolution (groups={layer.groups})")
    new = nn.Conv2d(
        keep_in,
        keep_out,
        layer.kernel_size,  # type: ignore[arg-type]
        stride=layer.stride,  # type: ignore[arg-type]
        padding=layer.padding,  # type: ignore[arg-type]
        dilation=layer.dilation,  # type: ignore[arg-type]
        bias=layer.bias is not None,
        padding_mode=layer.padding_mode,
    )
    kernel = tuple(first(k) for k in layer.weight.shape[2:])
    axes = {"weight": (first(keep_out), first(keep_in), *kernel)}
    if layer.bias is not None:
        axes["bias"] = (first(keep_out),)
    return Narrowed(new, axes)


def narrow_group_norm(layer: nn.GroupNorm, keep: int) -> Narrowed:
    new = nn.GroupNorm(groups_at(layer.num_groups, keep), keep, layer.eps, layer.affine)
    return Narrowed(new, {"weight": (first(keep),), "bias": (first(keep),)} if layer.affine else {})


def narrow_batch_norm(layer: nn.BatchNorm2d, keep: int) -> Narrowed:
    new = nn.BatchNorm2d(keep, layer.eps, layer.momentum, layer.affine, layer.track_running_stats)
    # Running statistics are buffers, not parameters: they never travel in the flat
    # vector, so the sub-model takes its slice of them here.
    with torch.no_grad():
        if layer.running_mean is not None and new.running_mean is not None:
            new.running_mean.copy_(layer.running_mean[:keep])
        if layer.running_var is not None and new.running_var is not None:
            new.running_var.copy_(layer.running_var[:keep])
    return Narrowed(new, {"weight": (first(keep),), "bias": (first(keep),)} if layer.affine else {})


def gate_rows(full_hidden: int, keep: int) -> np.ndarray:
    """Rows kept of an LSTM gate matrix (4H rows: input, forget, cell, output gates): the
    first ``keep`` units of each gate, so a kept unit keeps all four of its gates."""
    return np.concatenate([g * full_hidden + first(keep) for g in range(4)])


def narrow_lstm(layer: nn.LSTM, keep_hidden: int) -> Narrowed:
    """The LSTM with ``keep_hidden`` units per layer; the first layer's input (an
    embedding) keeps its size."""
    if layer.proj_size or layer.bidirectional:
        raise ConfigError("only unidirectional LSTMs without projection can be sliced")
    new = nn.LSTM(
        layer.input_size,
        keep_hidden,
        layer.num_layers,
        bias=layer.bias,
        batch_first=layer.batch_first,
        dropout=layer.dropout,
    )
    rows = gate_rows(layer.hidden_size, keep_hidden)
    axes: dict[str, tuple[np.ndarray, ...]] = {}
    for k in range(layer.num_layers):
        inputs = first(layer.input_size if k == 0 else keep_hidden)
        axes[f"weight_ih_l{k}"] = (rows, inputs)
        axes[f"weight_hh_l{k}"] = (rows, first(keep_hidden))
        if layer.bias:
            axes[f"bias_ih_l{k}"] = (rows,)
            axes[f"bias_hh_l{k}"] = (rows,)
    return Narrowed(new, axes)
