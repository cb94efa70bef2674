"""topk: magnitude top-k sparsification with per-client error feedback.

Each round a client sends only the k = ceil(ratio * n) entries of (update + residual) with the
largest magnitude; what it did not send becomes its residual and is added to its next update.
Without that feedback small coordinates would never be sent at all and the model would drift;
with it every coordinate is delivered eventually, so over rounds the sum of decoded updates
tracks the sum of true updates (they differ by exactly the current residual).

State: the codec object holds one float32 residual of n elements per client id that has
encoded (about 4*n bytes each, so 1000 clients of 100k params is ~400 MB). Use one codec
object per run, call reset() between runs, and do not share it between runs or simulations.

Wire format (little-endian):
    uint32 num_elements, uint32 k      8 bytes
    uint32 index[k]                    strictly increasing (sorted so a decoder can reject
                                       duplicates and out-of-range indices in one pass)
    float32 value[k]
Bytes: 8 + 8*k.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import torch
from pydantic import Field

from greenfl.compression.base import (
    F32,
    U32,
    EncodedUpdate,
    check_codec,
    check_finite,
    check_length,
    check_num_elements,
    check_update,
    read_array,
    read_header,
)
from greenfl.core.errors import UpdateRejected
from greenfl.core.registry import params

HEADER = "<II"
HEADER_BYTES = 8
DEFAULT_RATIO = 0.1
_U32_MAX = 2**32 - 1


def topk_count(num_elements: int, ratio: float) -> int:
    """ceil(ratio * n), taken on the decimal the user wrote: in binary 0.07 * 100 is
    7.000000000000001, and a plain ceil would send 8 entries where 7 were asked for."""
    return math.ceil(Fraction(repr(float(ratio))) * num_elements)


def topk_payload_bytes(k: int) -> int:
    return HEADER_BYTES + 8 * k


@params
class TopKParams:
    ratio: float = Field(DEFAULT_RATIO, gt=0, le=1, description="share of the coordinates sent")


class TopKCodec:
    """Stateful: see the module docstring. encode ignores the generator (selection is
    deterministic) but takes it to satisfy the Codec protocol."""

    name: str = "topk"
    Params = TopKParams

    def __init__(self, params: TopKParams | None = None) -> None:
        self.ratio = float((params if params is not None else TopKParams()).ratio)
        self._residuals: dict[int, torch.Tensor] = {}

    def k_for(self, num_elements: int) -> int:
        return topk_count(num_elements, self.ratio)

    def payload_bytes(self, num_elements: int) -> int:
        return topk_payload_bytes(self.k_for(num_elements))

    def residual(self, client_id: int) -> torch.Tensor | None:
        """A copy of the client's residual, or None before its first encode."""
        stored = self._residuals.get(client_id)
        return None if stored is None else stored.clone()

    def reset(self, client_id: int | None = None) -> None:
        """Forgets one client's residual, or every client's when client_id is None."""
        if client_id is None:
            self._residuals.clear()
        else:
            self._residuals.pop(client_id, None)

    def encode(
        self, update: torch.Tensor, client_id: int, generator: torch.Generator
    ) -> EncodedUpdate:
        flat = check_update(self.name, update)
        check_finite(self.name, flat)
        n = flat.numel()
        if n > _U32_MAX:
            raise ValueError(f"topk: {n} elements do not fit the uint32 header")
        previous = self._residuals.get(client_id)
        if previous is not None and previous.numel() != n:
            raise ValueError(
                f"topk: client {client_id} sent {n} elements but its residual has "
                f"{previous.numel()}; call reset() when the model changes"
            )
        total = flat.clone() if previous is None else flat + previous
        k = self.k_for(n)
        indices = torch.topk(total.abs(), k, sorted=False).indices.sort().values
        values = total[indices]
        residual = total
        residual[indices] = 0.0
        # Committed last, so an exception above leaves the client's residual as it was.
        self._residuals[client_id] = residual
        payload = b"".join(
            (
                np.array([n, k], dtype=U32).tobytes(),
                indices.numpy().astype(U32).tobytes(),
                values.numpy().astype(F32).tobytes(),
            )
        )
        return EncodedUpdate(self.name, n, payload)

    def decode(self, encoded: EncodedUpdate) -> torch.Tensor:
        check_codec(self.name, encoded)
        payload = bytes(encoded.payload)
        n, k = read_header(self.name, payload, HEADER)
        check_num_elements(self.name, encoded, n)
        if k > n:
            raise UpdateRejected(f"topk: header has k={k} for only {n} elements")
        check_length(self.name, payload, topk_payload_bytes(k))
        indices = read_array(payload, U32, k, HEADER_BYTES).astype(np.int64)
        values = read_array(payload, F32, k, HEADER_BYTES + 4 * k)
        if k and (indices[-1] >= n or (np.diff(indices) <= 0).any()):
            raise UpdateRejected("topk: indices are out of range, unsorted or repeated")
        dense = np.zeros(n, dtype=np.float32)
        dense[indices] = values
        return torch.from_numpy(dense)
