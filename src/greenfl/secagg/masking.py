"""Masks and the keys behind them.

PRG: AES-256 in counter mode (``cryptography``), keyed by the 32-byte seed, nonce zero,
output read as little-endian uint32. Why AES-CTR: it is a standard pseudorandom generator
under the AES-is-a-PRP assumption, and hardware AES makes it the fastest real PRG on
commodity CPUs (GB/s). numpy's Philox is a statistical generator with no cryptographic
claim: a server that saw part of its stream could try to predict the rest. A zero nonce is
safe because every seed is used for exactly one expansion: self-mask seeds are fresh
random bytes per round, and pairwise seeds come from fresh per-round X25519 keys through
HKDF bound to the round and the pair.

Pairwise masks: clients u and v agree on s_uv = HKDF-SHA256(X25519(s_sk_u, s_pk_v)); u adds
PRG(s_uv) when u < v and subtracts it when u > v, so the pair's masks cancel in the sum.
Self mask: PRG(b_u) from a random seed b_u, removed by the server once t survivors reveal
shares of b_u (so a client that is merely slow, not dropped, is never unmasked)."""

from __future__ import annotations

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SEED_BYTES = 32
_ZERO_NONCE = bytes(16)


def prg_uint32(seed: bytes, length: int) -> np.ndarray:
    """``length`` pseudorandom uint32 from a 32-byte seed (AES-256-CTR keystream)."""
    if len(seed) != SEED_BYTES:
        raise ValueError(f"a PRG seed is {SEED_BYTES} bytes, got {len(seed)}")
    enc = Cipher(algorithms.AES(seed), modes.CTR(_ZERO_NONCE)).encryptor()
    stream = enc.update(bytes(4 * length)) + enc.finalize()
    return np.frombuffer(stream, dtype="<u4").astype(np.uint32)


def agree(own: X25519PrivateKey, peer_public: bytes, purpose: bytes, context: bytes) -> bytes:
    """A 32-byte key for ``purpose`` shared with the holder of ``peer_public``: X25519 then
    HKDF, so the raw curve point (not uniform bytes) is never used as a key, and the mask
    seed and the encryption key of the same pair are independent."""
    shared = own.exchange(X25519PublicKey.from_public_bytes(peer_public))
    return HKDF(
        algorithm=hashes.SHA256(), length=SEED_BYTES, salt=None, info=purpose + b"|" + context
    ).derive(shared)


def pair_context(round_tag: bytes, u: int, v: int) -> bytes:
    """The same bytes on both sides of a pair: the round and the two ids, low first."""
    lo, hi = min(u, v), max(u, v)
    return round_tag + b"|" + str(lo).encode() + b"|" + str(hi).encode()


def pairwise_mask(seed: bytes, own_id: int, peer_id: int, length: int) -> np.ndarray:
    """The pair's mask with this client's sign: +PRG for the lower id, -PRG for the higher."""
    m = prg_uint32(seed, length)
    return m if own_id < peer_id else (np.uint32(0) - m).astype(np.uint32)


def self_mask(seed: bytes, length: int) -> np.ndarray:
    return prg_uint32(seed, length)


def public_bytes(key: X25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def private_bytes(key: X25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
