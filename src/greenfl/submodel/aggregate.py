"""HeteroFL aggregation (Diao et al., 2021): every coordinate of the global model is
moved by the weighted mean of the deltas of the clients whose sub-model holds it; a
coordinate nobody trained keeps its value.

    new[j] = global[j] + sum_{k: j in S_k} w_k d_k[j] / sum_{k: j in S_k} w_k

FjORD (Horvath et al., 2021) aggregates the same way; only how clients train differs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar

import numpy as np
import torch

from greenfl.core.errors import ConfigError, UpdateRejected
from greenfl.core.messages import ClientUpdate
from greenfl.core.registry import NoParams
from greenfl.strategy.base import StatelessStrategy
from greenfl.submodel.plan import Slice

SlicedDelta = tuple[np.ndarray, torch.Tensor, float]
"""(indices into the full vector, the delta at them, the client's weight)."""


def aggregate_slices(global_flat: torch.Tensor, updates: Iterable[SlicedDelta]) -> torch.Tensor:
    """The new global vector (a new tensor of ``global_flat``'s dtype): each coordinate
    moved by the weighted mean of the deltas that hold it, in float64; unchanged where no
    update holds it (or only updates of weight 0 do). ``indices`` must be strictly
    increasing (what ``Slice`` gives), so no client counts twice at a coordinate."""
    n = int(global_flat.numel())
    total = torch.zeros(n, dtype=torch.float64)
    weight_at = torch.zeros(n, dtype=torch.float64)
    for k, (indices, delta, weight) in enumerate(updates):
        idx = _checked(k, np.asarray(indices), delta, float(weight), n)
        total.index_add_(0, idx, delta.to(torch.float64) * float(weight))
        weight_at.index_add_(0, idx, torch.full((idx.numel(),), float(weight), dtype=torch.float64))
    trained = weight_at > 0
    step = torch.zeros(n, dtype=torch.float64)
    step[trained] = total[trained] / weight_at[trained]
    return (global_flat.to(torch.float64) + step).to(global_flat.dtype)


def _checked(
    k: int, indices: np.ndarray, delta: torch.Tensor, weight: float, n: int
) -> torch.Tensor:
    if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
        raise UpdateRejected(f"update {k}: slice indices must be a 1-d integer array")
    if delta.dim() != 1 or delta.numel() != indices.size:
        raise UpdateRejected(
            f"update {k}: delta of shape {tuple(delta.shape)} for {indices.size} slice indices"
        )
    if not np.isfinite(weight) or weight < 0:
        raise UpdateRejected(f"update {k}: weight must be finite and >= 0, got {weight}")
    if indices.size and (indices[0] < 0 or indices[-1] >= n or np.any(np.diff(indices) <= 0)):
        raise UpdateRejected(
            f"update {k}: slice indices must be strictly increasing within [0, {n})"
        )
    return torch.from_numpy(indices.astype(np.int64, copy=False))


class HeteroFL(StatelessStrategy):
    """The HeteroFL server rule as a Strategy: ``aggregate(global_params, updates)`` takes
    updates whose deltas are either full-length or the flat vector of one of the run's
    width slices. The delta's length names its slice: a wider slice keeps at least as
    many units in every layer and more in one, so two different slices never have the
    same length. A ClientUpdate's weight (samples x work done) weighs it. Synchronous
    rounds: the asynchronous fields (staleness_weight, base) are not read.

    Built by whoever knows the model (``width_slices(model, widths)``), not from config."""

    name = "heterofl"
    Params: ClassVar[type] = NoParams

    def __init__(self, slices: Mapping[float, Slice] | Iterable[Slice], full_numel: int) -> None:
        pieces = slices.values() if isinstance(slices, Mapping) else slices
        self.full_numel = int(full_numel)
        self._by_length: dict[int, np.ndarray] = {}
        for piece in pieces:
            if piece.full_numel != self.full_numel:
                raise ConfigError(
                    f"slice of width {piece.width} is of a model of {piece.full_numel} "
                    f"parameters, not {self.full_numel}"
                )
            self._by_length[piece.numel] = piece.indices
        self._by_length[self.full_numel] = np.arange(self.full_numel, dtype=np.int64)

    def indices_for(self, delta: torch.Tensor) -> np.ndarray:
        """The slice a delta of this length was trained on."""
        found = self._by_length.get(int(delta.numel()))
        if found is None:
            raise UpdateRejected(
                f"a delta of {delta.numel()} entries matches no width slice "
                f"(lengths {sorted(self._by_length)})"
            )
        return found

    def aggregate(
        self, global_params: torch.Tensor, updates: Sequence[ClientUpdate]
    ) -> torch.Tensor:
        if int(global_params.numel()) != self.full_numel:
            raise UpdateRejected(
                f"global vector of {global_params.numel()} entries, slices of {self.full_numel}"
            )
        return aggregate_slices(
            global_params, [(self.indices_for(u.delta), u.delta, u.weight) for u in updates]
        )

    def aggregation_flops(self, num_updates: int, num_params: int) -> int:
        """An upper bound (every update full-width): per coordinate of each update a
        multiply and two adds (weighted delta, weight sum), then a divide and an add."""
        return 3 * num_updates * num_params + 2 * num_params
