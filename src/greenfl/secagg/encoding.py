"""Fixed-point encoding of float32 vectors into the ring Z_{2^32}, where the masks live.

A value x is clipped to [-clip_range, clip_range], scaled by 2^frac_bits and rounded to the
nearest integer q; q is stored as its two's-complement uint32. Adding uint32 vectors with
numpy's wrap-around is addition mod 2^32, so the sum of N encodings (and of the masks,
which cancel) decodes correctly as long as the true integer sum fits in a signed 32-bit
word: N * clip_range * 2^frac_bits <= 2^31 - 1. ``FixedPoint.for_clients`` picks the
largest frac_bits that allows.

Error bound: rounding moves each encoded value by at most half a step, 2^-(frac_bits+1),
and decoding (an int32 divided by a power of two, in float64) is exact, so the decoded sum
of N encodings differs from the sum of the clipped inputs by at most
N * 2^-(frac_bits+1) per coordinate (``max_sum_error``). Clipping adds error only for
inputs outside the range; that is the choice of clip_range, not of the encoding."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from greenfl.secagg.errors import SecAggError

MODULUS_BITS = 32
_INT_MAX = 2 ** (MODULUS_BITS - 1) - 1


@dataclass(frozen=True)
class FixedPoint:
    """The encoding of one aggregation: values in [-clip_range, clip_range], step
    2^-frac_bits, sums of up to ``max_clients`` encodings decodable."""

    clip_range: float
    frac_bits: int
    max_clients: int

    def __post_init__(self) -> None:
        if not (self.clip_range > 0 and math.isfinite(self.clip_range)):
            raise SecAggError(f"clip_range must be finite and > 0, got {self.clip_range}")
        if self.max_clients < 1 or self.frac_bits < 0:
            raise SecAggError("max_clients must be >= 1 and frac_bits >= 0")
        # Headroom: the largest possible sum must not wrap past the sign bit.
        largest = self.max_clients * math.floor(self.clip_range * 2.0**self.frac_bits + 0.5)
        if largest > _INT_MAX:
            raise SecAggError(
                f"{self.max_clients} x {self.clip_range:g} at 2^-{self.frac_bits} does not "
                f"fit in {MODULUS_BITS} bits; use fewer fractional bits"
            )

    @classmethod
    def for_clients(cls, max_clients: int, clip_range: float) -> FixedPoint:
        """The finest step with which the sum of ``max_clients`` inputs cannot overflow."""
        if max_clients < 1 or not clip_range > 0:
            raise SecAggError("for_clients needs max_clients >= 1 and clip_range > 0")
        bits = math.floor(math.log2(_INT_MAX / (max_clients * clip_range)))
        while bits > 0:
            try:
                return cls(clip_range, bits, max_clients)
            except SecAggError:  # rounding up at the edge of the range: one bit less
                bits -= 1
        return cls(clip_range, 0, max_clients)

    @property
    def step(self) -> float:
        return 2.0**-self.frac_bits

    def encode(self, x: np.ndarray) -> np.ndarray:
        """uint32 encoding of a float vector; NaN counts as 0 (a diverged client must not
        poison the sum, and the server could not tell which one did)."""
        v = np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0)
        v = np.clip(v, -self.clip_range, self.clip_range)
        q = np.rint(v * 2.0**self.frac_bits).astype(np.int64)
        return q.astype(np.uint32)  # two's complement: -1 -> 2^32 - 1

    def decode_sum(self, total: np.ndarray, num_inputs: int) -> np.ndarray:
        """The float64 sum of ``num_inputs`` encodings from their uint32 sum mod 2^32."""
        if not 1 <= num_inputs <= self.max_clients:
            raise SecAggError(
                f"a sum of {num_inputs} inputs; this encoding decodes 1..{self.max_clients}"
            )
        signed = np.asarray(total, dtype=np.uint32).view(np.int32).astype(np.float64)
        return signed * self.step

    def max_abs_sum(self, num_inputs: int) -> float:
        """Largest |decoded sum| per coordinate that ``num_inputs`` encodings can give:
        each is at most round(clip_range x 2^frac_bits) steps from zero. Exact in float64
        (an integer below 2^31 times a power of two)."""
        return num_inputs * math.floor(self.clip_range * 2.0**self.frac_bits + 0.5) * self.step

    def max_sum_error(self, num_inputs: int) -> float:
        """Largest |decoded sum - sum of clipped inputs| per coordinate."""
        return num_inputs * 2.0 ** -(self.frac_bits + 1)
