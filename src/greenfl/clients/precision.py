"""Mixed-precision training of a client (``FitInstructions.precision``): torch.autocast for
bf16 and fp16, with fp32 master weights, and fp16's dynamic loss scaling.

Autocast runs matmuls and convolutions (``linear``, ``conv2d``, ``bmm``, ``baddbmm``...) in
the lower precision and keeps the weights, the optimiser step and the loss in float32, so a
client's update is float32 in every precision. fp16's narrow exponent range flushes small
gradients to zero: its loss is multiplied by a per-client scale before the backward pass and
the gradients divided by it after, and a step whose gradients overflow is skipped and the
scale halved (the policy of ``torch.amp.GradScaler``: start at 2**16, halve on overflow,
double after 2,000 clean steps in a row). bf16 has float32's exponent range and needs none.

The sequential and vectorised trainers both use this module, so they stay step-for-step
the same in every precision."""

from __future__ import annotations

import contextlib
import logging
import warnings
from functools import cache

import torch

log = logging.getLogger(__name__)

AUTOCAST_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}

# torch.amp.GradScaler's defaults
INIT_SCALE = 2.0**16
BACKOFF_FACTOR = 0.5
GROWTH_FACTOR = 2.0
GROWTH_INTERVAL = 2000


@cache
def autocast_supported(device_type: str, dtype: torch.dtype) -> bool:
    """Whether this torch autocasts ``device_type`` to ``dtype``: a torch that cannot warns
    and runs the op in float32 instead, which a one-op probe shows."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.autocast(device_type, dtype=dtype):
            out = torch.ones(2, 2, device=device_type) @ torch.ones(2, 2, device=device_type)
    return out.dtype == dtype


@cache
def compute_dtype(precision: str, device_type: str = "cpu") -> torch.dtype | None:
    """The dtype autocast runs ``precision``'s matmuls in on ``device_type``; None for fp32.
    fp16 where this torch cannot autocast to it runs bf16 numerics (logged once): the
    accounting still charges the device's fp16 rates, which is what the run models."""
    if precision == "fp32":
        return None
    dtype = AUTOCAST_DTYPES.get(precision)
    if dtype is None:
        raise ValueError(f"unknown precision {precision!r}: one of fp32, bf16, fp16")
    if dtype is torch.float16 and not autocast_supported(device_type, dtype):
        log.warning(
            "this torch (%s) cannot autocast %s to float16: fp16 clients train with bfloat16 "
            "numerics (the footprint still charges the fp16 rates)",
            torch.__version__,
            device_type,
        )
        return torch.bfloat16
    return dtype


def autocast(precision: str, device_type: str = "cpu") -> contextlib.AbstractContextManager:
    """The context a client's forward pass runs in: autocast for bf16 / fp16, nothing for
    fp32 (so an fp32 run is exactly what it was before precisions existed)."""
    dtype = compute_dtype(precision, device_type)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=dtype)


def needs_loss_scale(precision: str, device_type: str = "cpu") -> bool:
    """fp16 numerics need loss scaling; bf16 (float32's exponent range) and fp32 do not."""
    return compute_dtype(precision, device_type) is torch.float16


class LossScales:
    """Per-client dynamic loss scales (one per row of a stacked cohort, or one for a single
    client): ``scale`` multiplies each client's loss before backward; ``update`` takes which
    clients' gradients were finite, halves the others' scale and grows a scale after
    GROWTH_INTERVAL clean steps in a row."""

    def __init__(self, num_clients: int) -> None:
        self.scale = torch.full((num_clients,), INIT_SCALE, dtype=torch.float32)
        self._clean = torch.zeros(num_clients, dtype=torch.int64)

    def update(self, finite: torch.Tensor, upto: int | None = None) -> None:
        """``finite``: bool per client of the first ``upto`` clients (default all)."""
        a = len(self.scale) if upto is None else upto
        scale, clean = self.scale[:a], self._clean[:a]
        clean.copy_(torch.where(finite, clean + 1, torch.zeros_like(clean)))
        grow = clean >= GROWTH_INTERVAL
        scale.copy_(
            torch.where(
                finite,
                torch.where(grow, scale * GROWTH_FACTOR, scale),
                scale * BACKOFF_FACTOR,
            )
        )
        clean.masked_fill_(grow, 0)
