"""Magnitude pruning (Zhu & Gupta, 2017): in every prunable tensor, the ``k`` weights of
smallest magnitude are pruned, k = floor(sparsity x the tensor's size). Each tensor is
pruned to the same sparsity (layer-wise, as Zhu & Gupta do), so no small layer is emptied
by a global threshold set by a large one.

A weight pruned before is pruned first again (its magnitude counts as below any kept
weight's), so a mask only grows as the schedule's sparsity rises; ties are broken by
position (the earlier coordinate is pruned first), so a mask is a pure function of the
weights and the previous mask.

The mask's wire size (``mask_cost``): the receiver knows the architecture, so only the
prunable coordinates need describing, n of them. Two encodings, the cheaper counted:

- a bitmap: one bit per prunable coordinate, ceil(n / 8) bytes;
- an index list: the positions of the minority (the pruned ones, or the kept ones when
  fewer), 4 bytes each (uint32);

plus one byte saying which of the two it is."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from greenfl.sparse.layout import PrunableLayout

INDEX_BYTES = 4  # a uint32 position
TAG_BYTES = 1  # which encoding follows


def pruned_count(numel: int, sparsity: float) -> int:
    """Weights pruned in a tensor of ``numel`` at ``sparsity``: floor(sparsity x numel),
    never more than asked (the small epsilon keeps 0.3 x 10 at 3, not 2)."""
    return min(numel, int(math.floor(sparsity * numel + 1e-9)))


def magnitude_mask(
    params: torch.Tensor,
    layout: PrunableLayout,
    sparsity: float,
    previous: torch.Tensor | None = None,
) -> torch.Tensor:
    """The mask (True: kept) over the flat ``params`` with ``pruned_count`` weights of
    every prunable tensor pruned, the smallest in magnitude, those ``previous`` pruned
    first. Coordinates that are not prunable are always kept."""
    if params.dim() != 1 or params.numel() != layout.numel:
        raise ValueError(f"params of shape {tuple(params.shape)} for a layout of {layout.numel}")
    values = params.detach().to(torch.float64).abs().numpy()
    before = None if previous is None else previous.numpy()
    mask = np.ones(layout.numel, dtype=bool)
    for seg in layout.prunable:
        k = pruned_count(seg.numel, sparsity)
        if k == 0:
            continue
        score = values[seg.offset : seg.end].copy()
        if before is not None:
            score[~before[seg.offset : seg.end]] = -1.0  # below any magnitude
        order = np.argsort(score, kind="stable")
        mask[seg.offset + order[:k]] = False
    return torch.from_numpy(mask)


@dataclass(frozen=True)
class MaskCost:
    """The mask's encoding on the wire and its size in bytes."""

    encoding: str  # "bitmap" or "indices"
    bytes: int


def mask_cost(mask: torch.Tensor, layout: PrunableLayout) -> MaskCost:
    """The cheaper of the bitmap and the index list for ``mask`` (see the module's doc)."""
    n = layout.prunable_numel
    kept = int(mask[layout.prunable_positions()].sum())
    bitmap = -(-n // 8)
    indices = INDEX_BYTES * min(kept, n - kept)
    if indices < bitmap:
        return MaskCost("indices", TAG_BYTES + indices)
    return MaskCost("bitmap", TAG_BYTES + bitmap)
