"""Update compression: codecs that turn a flat float32 model delta into wire bytes.

len(EncodedUpdate.payload) is the bytes_up a client is charged for, so every codec's payload
is a real serialisation, header included. Codecs by registry name (a new one is one module
plus one line below, or an entry point in the ``greenfl.codecs`` group):

    identity  raw float32                        4*n bytes
    q8        per-chunk 8-bit stochastic         8 + 8*ceil(n/chunk_size) + n bytes
    q4        per-chunk 4-bit stochastic         8 + 8*ceil(n/chunk_size) + ceil(n/2) bytes
    topk      top-k with error feedback          8 + 8*ceil(ratio*n) bytes (stateful)

Importing this package imports no codec: the classes live in their modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from greenfl.core.registry import Registry

if TYPE_CHECKING:
    from greenfl.compression.base import Codec

CODECS: Registry[Codec] = Registry(
    "codec",
    "greenfl.codecs",
    {
        "identity": "greenfl.compression.identity:IdentityCodec",
        "q8": "greenfl.compression.quantize:Q8Codec",
        "q4": "greenfl.compression.quantize:Q4Codec",
        "topk": "greenfl.compression.topk:TopKCodec",
    },
)


def make(name: str, **params: Any) -> Codec:
    """A fresh codec (stateful ones start with no residuals), with these parameters."""
    return CODECS.make(name, **params)


__all__ = ["CODECS", "make"]
