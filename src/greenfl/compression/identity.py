"""No compression: the baseline every codec's bytes_up is compared against.

Wire format: the update's raw little-endian float32 bytes, nothing else.
Bytes: 4 * n. No header, since the identity payload is what an uncompressed FL system would
send; num_elements comes from the envelope.
"""

from __future__ import annotations

import torch

from greenfl.compression.base import (
    F32,
    EncodedUpdate,
    check_codec,
    check_length,
    check_update,
    read_array,
)
from greenfl.core.registry import NoParams


def identity_payload_bytes(num_elements: int) -> int:
    return 4 * num_elements


class IdentityCodec:
    """Stateless and exact. Non-finite values pass through untouched: judging them is the
    aggregator's job, and an exact codec has no reason to refuse them."""

    name: str = "identity"
    Params = NoParams

    def __init__(self, params: NoParams | None = None) -> None:
        return None

    def encode(
        self, update: torch.Tensor, client_id: int, generator: torch.Generator
    ) -> EncodedUpdate:
        flat = check_update(self.name, update)
        payload = flat.numpy().astype(F32, copy=False).tobytes()
        return EncodedUpdate(self.name, flat.numel(), payload)

    def decode(self, encoded: EncodedUpdate) -> torch.Tensor:
        check_codec(self.name, encoded)
        payload = bytes(encoded.payload)
        check_length(self.name, payload, identity_payload_bytes(encoded.num_elements))
        return torch.from_numpy(read_array(payload, F32, encoded.num_elements, 0))
