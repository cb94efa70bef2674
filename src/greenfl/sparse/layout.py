"""Which coordinates of the flat parameter vector may be pruned: the weight matrices and
kernels of linear, convolutional and recurrent layers. Biases and normalisation scales
stay dense: they are few (under 2% of the reference models), and pruning a bias or a
GroupNorm scale removes a whole unit's offset or gain, not one connection."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from greenfl.core.errors import ConfigError

PRUNABLE_LAYERS: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.RNNBase,  # LSTM, GRU, RNN: their weight_ih_l* and weight_hh_l* matrices
)


@dataclass(frozen=True)
class Segment:
    """One parameter tensor's place in the flat vector."""

    name: str
    offset: int
    shape: tuple[int, ...]
    prunable: bool

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def end(self) -> int:
        return self.offset + self.numel


@dataclass(frozen=True)
class PrunableLayout:
    """Every parameter tensor of a model, in ``model.parameters()`` order (the flat
    vector's), and whether its coordinates may be pruned."""

    segments: tuple[Segment, ...]

    @property
    def numel(self) -> int:
        return self.segments[-1].end if self.segments else 0

    @property
    def prunable(self) -> tuple[Segment, ...]:
        return tuple(s for s in self.segments if s.prunable)

    @property
    def prunable_numel(self) -> int:
        return sum(s.numel for s in self.prunable)

    def prunable_positions(self) -> torch.Tensor:
        """A boolean vector over the flat parameters: True where a coordinate may be pruned."""
        out = torch.zeros(self.numel, dtype=torch.bool)
        for s in self.prunable:
            out[s.offset : s.end] = True
        return out


def _prunable_names(model: nn.Module) -> set[str]:
    names: set[str] = set()
    for prefix, module in model.named_modules():
        if not isinstance(module, PRUNABLE_LAYERS):
            continue
        for pname, _ in module.named_parameters(recurse=False):
            # a layer's weights, not its biases (``bias``, ``bias_ih_l0``, ...)
            if pname == "weight" or pname.startswith("weight_"):
                names.add(f"{prefix}.{pname}" if prefix else pname)
    return names


def prunable_layout(model: nn.Module) -> PrunableLayout:
    """``model``'s layout; a ConfigError if it has no prunable weight."""
    prunable = _prunable_names(model)
    segments, offset = [], 0
    for name, p in model.named_parameters():
        seg = Segment(name, offset, tuple(p.shape), name in prunable)
        segments.append(seg)
        offset = seg.end
    layout = PrunableLayout(tuple(segments))
    if layout.prunable_numel == 0:
        kinds = ", ".join(t.__name__ for t in PRUNABLE_LAYERS)
        raise ConfigError(
            f"sparse training prunes the weights of {kinds} layers; model "
            f"{type(model).__name__} has none"
        )
    return layout
