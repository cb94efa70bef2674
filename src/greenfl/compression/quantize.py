"""q8 and q4: per-chunk uniform quantisation with stochastic rounding.

The update is cut into chunks of chunk_size elements (the last may be shorter). Each chunk
stores its min and its step (scale) as float32; element x becomes the integer level
q in [0, 2^bits - 1] with min + q*scale on either side of x, rounded up with probability
equal to the fractional part. That makes decode unbiased, E[decode(encode(x))] = x, which
plain rounding is not, and it is what keeps FedAvg's average of quantised updates honest.
Per-chunk (not global) ranges stop one outlier from flattening every other weight to 0.

Wire format (little-endian):
    uint32 num_elements, uint32 chunk_size          8 bytes
    float32 min[c], float32 scale[c]                8*c bytes, c = ceil(n / chunk_size)
    codes                                           q8: one uint8 per element
                                                    q4: two per byte, element 2i in the low
                                                        nibble and 2i+1 in the high nibble;
                                                        an odd tail leaves the high nibble 0
Bytes: q8 = 8 + 8*ceil(n/chunk_size) + n, q4 = 8 + 8*ceil(n/chunk_size) + ceil(n/2).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from pydantic import Field

from greenfl.compression.base import (
    F32,
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
DEFAULT_CHUNK_SIZE = 1024
_U32_MAX = 2**32 - 1


def quantized_payload_bytes(num_elements: int, bits: int, chunk_size: int) -> int:
    chunks = math.ceil(num_elements / chunk_size)
    return HEADER_BYTES + 8 * chunks + math.ceil(num_elements * bits / 8)


def quantize(
    update: torch.Tensor, bits: int, chunk_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(min float32[c], scale float32[c], codes uint8[n]) for a finite, non-empty update.
    Works in float64 against the float32 min and scale the decoder will see, so the rounding
    probabilities are unbiased for the values actually reconstructed."""
    n = update.numel()
    chunks = math.ceil(n / chunk_size)
    # A chunk_size above n is one short chunk; padding it to chunk_size would cost memory
    # in proportion to a config number, not to the update.
    width = min(chunk_size, n)
    pad = chunks * width - n
    x = update.double()
    # Repeating the last value pads the tail chunk without moving its min or max.
    grid = torch.cat([x, x[-1:].expand(pad)]).view(chunks, width)
    lo = grid.amin(dim=1)
    hi = grid.amax(dim=1)
    levels = 2**bits - 1
    span = hi - lo
    scale32 = (span / levels).float()
    # float32 rounding may shrink the step so the top level falls short of max, which would
    # clamp (and bias) the largest element; one ulp up always covers it.
    short = scale32.double() * levels < span
    scale32 = torch.where(short, torch.nextafter(scale32, torch.tensor(math.inf)), scale32)
    scale = scale32.double()
    # A constant chunk has scale 0: every element is its min, level 0, decoded exactly.
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    t = ((grid - lo[:, None]) / safe[:, None]).clamp_(0, levels)
    floor = t.floor()
    draws = torch.rand(t.shape, generator=generator, dtype=torch.float64)
    codes = (floor + (draws < t - floor)).clamp_(0, levels).to(torch.uint8)
    return lo.float(), scale32, codes.reshape(-1)[:n]


def pack(codes: np.ndarray, bits: int) -> bytes:
    if bits == 8:
        return codes.tobytes()
    if codes.size % 2:
        codes = np.append(codes, np.uint8(0))
    return (codes[0::2] | (codes[1::2] << 4)).astype(np.uint8).tobytes()


def unpack(payload: bytes, bits: int, num_elements: int, offset: int) -> np.ndarray:
    if bits == 8:
        return read_array(payload, np.dtype(np.uint8), num_elements, offset)
    packed = read_array(payload, np.dtype(np.uint8), math.ceil(num_elements / 2), offset)
    codes = np.empty(2 * packed.size, dtype=np.uint8)
    codes[0::2] = packed & 0x0F
    codes[1::2] = packed >> 4
    return codes[:num_elements]


@params
class QuantizerParams:
    chunk_size: int = Field(
        DEFAULT_CHUNK_SIZE,
        ge=1,
        le=_U32_MAX,
        strict=True,
        description="elements per quantisation chunk (each chunk sends its min and scale)",
    )


class UniformQuantizer:
    """Stateless; randomness comes only from the generator passed to encode (a CPU
    torch.Generator), so the same seed gives the same bytes."""

    name: str = ""
    bits: int = 0
    Params = QuantizerParams

    def __init__(self, params: QuantizerParams | None = None) -> None:
        self.chunk_size = (params if params is not None else QuantizerParams()).chunk_size

    def payload_bytes(self, num_elements: int) -> int:
        return quantized_payload_bytes(num_elements, self.bits, self.chunk_size)

    def encode(
        self, update: torch.Tensor, client_id: int, generator: torch.Generator
    ) -> EncodedUpdate:
        flat = check_update(self.name, update)
        check_finite(self.name, flat)
        n = flat.numel()
        if n > _U32_MAX:
            raise ValueError(f"{self.name}: {n} elements do not fit the uint32 header")
        header = np.array([n, self.chunk_size], dtype="<u4").tobytes()
        if n == 0:
            return EncodedUpdate(self.name, 0, header)
        lo, scale, codes = quantize(flat, self.bits, self.chunk_size, generator)
        payload = b"".join(
            (
                header,
                lo.numpy().astype(F32).tobytes(),
                scale.numpy().astype(F32).tobytes(),
                pack(codes.numpy(), self.bits),
            )
        )
        return EncodedUpdate(self.name, n, payload)

    def decode(self, encoded: EncodedUpdate) -> torch.Tensor:
        check_codec(self.name, encoded)
        payload = bytes(encoded.payload)
        n, chunk_size = read_header(self.name, payload, HEADER)
        check_num_elements(self.name, encoded, n)
        if chunk_size == 0:
            raise UpdateRejected(f"{self.name}: header has chunk_size 0")
        check_length(self.name, payload, quantized_payload_bytes(n, self.bits, chunk_size))
        chunks = math.ceil(n / chunk_size)
        lo = read_array(payload, F32, chunks, HEADER_BYTES)
        scale = read_array(payload, F32, chunks, HEADER_BYTES + 4 * chunks)
        if not (np.isfinite(lo).all() and np.isfinite(scale).all() and (scale >= 0).all()):
            raise UpdateRejected(f"{self.name}: header has a non-finite min or a bad scale")
        codes = unpack(payload, self.bits, n, HEADER_BYTES + 8 * chunks)
        # Index by element rather than np.repeat(…, chunk_size): chunk_size comes off the
        # wire, and repeating by a hostile 2^32 would allocate far more than the payload.
        chunk = np.arange(n) // chunk_size
        # float64 so min + q*scale is rounded once, to float32, at the end.
        values = lo.astype(np.float64)[chunk] + codes * scale.astype(np.float64)[chunk]
        return torch.from_numpy(values.astype(np.float32))


class Q8Codec(UniformQuantizer):
    name = "q8"
    bits = 8


class Q4Codec(UniformQuantizer):
    name = "q4"
    bits = 4
