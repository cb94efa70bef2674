"""Update compression: codecs that turn a flat float32 model delta into wire bytes.

len(EncodedUpdate.payload) is the bytes_up a client is charged for, so every codec's payload
is a real serialisation, header included. Codecs by registry name:

    identity  raw float32                        4*n bytes
    q8        per-chunk 8-bit stochastic         8 + 8*ceil(n/chunk_size) + n bytes
    q4        per-chunk 4-bit stochastic         8 + 8*ceil(n/chunk_size) + ceil(n/2) bytes
    topk      top-k with error feedback          8 + 8*ceil(ratio*n) bytes (stateful)
"""

from __future__ import annotations

from typing import Any

from greenfl.compression.base import Codec, EncodedUpdate
from greenfl.compression.identity import IdentityCodec
from greenfl.compression.quantize import Q4Codec, Q8Codec, UniformQuantizer
from greenfl.compression.topk import TopKCodec
from greenfl.core.registry import make_from

CODECS: dict[str, type[Codec]] = {
    "identity": IdentityCodec,
    "q8": Q8Codec,
    "q4": Q4Codec,
    "topk": TopKCodec,
}


def make(name: str, **params: Any) -> Codec:
    """A fresh codec (stateful ones start with no residuals)."""
    return make_from("codec", CODECS, name, **params)


__all__ = [
    "CODECS",
    "Codec",
    "EncodedUpdate",
    "IdentityCodec",
    "Q4Codec",
    "Q8Codec",
    "TopKCodec",
    "UniformQuantizer",
    "make",
]
