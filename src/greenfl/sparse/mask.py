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


# The tag byte of a mask on the wire (``encode_mask``; structured masks: channels.py)
TAG_BITMAP = 0  # one bit per prunable coordinate (numpy.packbits order), 1: kept
TAG_PRUNED = 1  # uint32 little-endian positions, among the prunable coordinates, of the pruned
TAG_KEPT = 2  # ... of the kept ones (when fewer than the pruned)


def encode_mask(mask: torch.Tensor, layout: PrunableLayout) -> bytes:
    """``mask`` in the encoding ``mask_cost`` prices (its length is ``mask_cost(...).bytes``):
    the tag byte, then the bitmap or the minority's positions. Positions count prunable
    coordinates only, in flat order; the rest are always kept."""
    bits = mask[layout.prunable_positions()].numpy()
    cost = mask_cost(mask, layout)
    if cost.encoding == "bitmap":
        return bytes([TAG_BITMAP]) + np.packbits(bits).tobytes()
    kept = int(bits.sum())
    tag, listed = (TAG_KEPT, bits) if kept < bits.size - kept else (TAG_PRUNED, ~bits)
    return bytes([tag]) + np.flatnonzero(listed).astype("<u4").tobytes()


def decode_mask(data: bytes, layout: PrunableLayout) -> torch.Tensor:
    """The flat mask (True: kept) ``encode_mask`` wrote; ValueError naming what does not fit
    ``layout`` (a wrong tag, length or position)."""
    n = layout.prunable_numel
    if not data:
        raise ValueError("an empty sparsity mask")
    tag, body = data[0], data[1:]
    if tag == TAG_BITMAP:
        if len(body) != -(-n // 8):
            raise ValueError(f"a mask bitmap of {len(body)} bytes for {n} prunable weights")
        bits = np.unpackbits(np.frombuffer(body, dtype=np.uint8), count=n).astype(bool)
    elif tag in (TAG_PRUNED, TAG_KEPT):
        if len(body) % INDEX_BYTES:
            raise ValueError(f"a mask position list of {len(body)} bytes (4 a position)")
        positions = np.frombuffer(body, dtype="<u4").astype(np.int64)
        if positions.size and int(positions.max()) >= n:
            raise ValueError(f"a mask position {int(positions.max())} past {n} prunable weights")
        bits = np.full(n, tag == TAG_PRUNED, dtype=bool)
        bits[positions] = tag == TAG_KEPT
    else:
        raise ValueError(f"an unknown mask encoding tag {tag}")
    mask = torch.ones(layout.numel, dtype=torch.bool)
    mask[layout.prunable_positions()] = torch.from_numpy(bits)
    return mask
