"""The Codec protocol, the encoded form of an update, and the checks every codec shares.

All wire formats are little-endian and start with a fixed header, so a payload can be decoded
on any host from its bytes alone. Decoders check the structure of a payload (lengths, header
fields, index ranges) and raise UpdateRejected when it is wrong: a payload comes from a client
and must never surface as a numpy or struct traceback on the server.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from greenfl.core.errors import UpdateRejected

F32 = np.dtype("<f4")
U32 = np.dtype("<u4")


@dataclass(frozen=True)
class EncodedUpdate:
    """An update as it goes on the wire. len(payload) is what the ledger records as bytes_up;
    codec and num_elements travel beside it (a transport frames them), but every payload
    repeats what it needs, so they are also checked against it on decode."""

    codec: str
    num_elements: int
    payload: bytes


@runtime_checkable
class Codec(Protocol):
    """Turns a flat float32 update into bytes and back. encode may draw from the generator
    (stochastic rounding), so a run is reproducible from its seed."""

    name: str

    def encode(
        self, update: torch.Tensor, client_id: int, generator: torch.Generator
    ) -> EncodedUpdate: ...

    def decode(self, encoded: EncodedUpdate) -> torch.Tensor: ...


def check_update(codec: str, update: torch.Tensor) -> torch.Tensor:
    """Returns update as a contiguous CPU tensor, or raises if it is not a flat float32 delta.
    Shape and dtype are caller bugs (TypeError/ValueError), not a client's fault."""
    if not isinstance(update, torch.Tensor):
        raise TypeError(f"{codec}: update must be a torch.Tensor, got {type(update).__name__}")
    if update.dtype != torch.float32:
        raise TypeError(f"{codec}: update must be float32, got {update.dtype}")
    if update.dim() != 1:
        raise ValueError(f"{codec}: update must be 1-D, got shape {tuple(update.shape)}")
    return update.detach().cpu().contiguous()


def check_finite(codec: str, update: torch.Tensor) -> None:
    """Lossy codecs cannot represent inf/NaN (a quantiser's range and a residual would be
    poisoned), so a diverged client's update is rejected here rather than garbled."""
    if not bool(torch.isfinite(update).all()):
        raise UpdateRejected(f"{codec}: update has non-finite values and cannot be encoded")


def check_codec(codec: str, encoded: EncodedUpdate) -> None:
    if encoded.codec != codec:
        raise UpdateRejected(f"{codec}: cannot decode an update encoded with {encoded.codec!r}")
    if not isinstance(encoded.payload, (bytes, bytearray, memoryview)):
        raise UpdateRejected(
            f"{codec}: payload must be bytes, got {type(encoded.payload).__name__}"
        )
    if encoded.num_elements < 0:
        raise UpdateRejected(f"{codec}: num_elements is negative ({encoded.num_elements})")


def read_header(codec: str, payload: bytes, fmt: str) -> tuple[int, ...]:
    """Unpacks the fixed header, or rejects a payload too short to hold one."""
    size = struct.calcsize(fmt)
    if len(payload) < size:
        raise UpdateRejected(
            f"{codec}: payload is {len(payload)} bytes, shorter than its {size}-byte header"
        )
    return struct.unpack_from(fmt, payload, 0)


def check_length(codec: str, payload: bytes, expected: int) -> None:
    """Exact match, not at-least: trailing bytes mean the header and body disagree."""
    if len(payload) != expected:
        kind = "truncated" if len(payload) < expected else "has trailing bytes"
        raise UpdateRejected(
            f"{codec}: payload is {len(payload)} bytes, header implies {expected} ({kind})"
        )


def check_num_elements(codec: str, encoded: EncodedUpdate, in_header: int) -> None:
    if in_header != encoded.num_elements:
        raise UpdateRejected(
            f"{codec}: payload holds {in_header} elements, envelope says {encoded.num_elements}"
        )


def read_array(payload: bytes, dtype: np.dtype, count: int, offset: int) -> np.ndarray:
    """A native-endian, writable copy (frombuffer over bytes is read-only, which torch warns
    about). Callers have already checked the length, so this cannot run past the end."""
    return np.frombuffer(payload, dtype=dtype, count=count, offset=offset).astype(
        dtype.newbyteorder("="), copy=True
    )
