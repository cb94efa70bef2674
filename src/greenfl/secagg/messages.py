"""The protocol's messages: plain dataclasses of ints and bytes, so a transport can carry
them as they are (deploy/secagg_wire.py maps them onto protobuf)."""

from __future__ import annotations

from dataclasses import dataclass

from greenfl.secagg.graph import RoundParams


@dataclass(frozen=True)
class AdvertiseKeys:
    """Round 1, client -> server: two fresh X25519 public keys, c_pk to encrypt shares to
    this client, s_pk to agree pairwise mask seeds with it."""

    client_id: int
    c_pk: bytes
    s_pk: bytes


@dataclass(frozen=True)
class KeyBook:
    """Round 1, server -> client: the round's parameters and its neighbours' keys."""

    params: RoundParams
    neighbours: tuple[AdvertiseKeys, ...]


@dataclass(frozen=True)
class EncryptedShare:
    """One client's shares of b_u and s_sk_u for one neighbour, under AES-GCM with a key
    only the two of them can derive: the server routes it and cannot read it."""

    sender: int
    recipient: int
    nonce: bytes
    ciphertext: bytes


@dataclass(frozen=True)
class ShareKeys:
    """Round 2, client -> server."""

    client_id: int
    shares: tuple[EncryptedShare, ...]


@dataclass(frozen=True)
class ShareBundle:
    """Round 2, server -> client: who shared (U2), and the shares addressed to it."""

    sharers: tuple[int, ...]
    shares: tuple[EncryptedShare, ...]


@dataclass(frozen=True)
class MaskedInput:
    """Round 3, client -> server: the encoded input plus all masks, uint32 little-endian."""

    client_id: int
    data: bytes


@dataclass(frozen=True)
class UnmaskRequest:
    """Round 3, server -> client: whose masked inputs arrived (U3) and who shared but sent
    none (dropped). The two sets must not meet: a client asked for both secrets of the
    same peer refuses."""

    survivors: tuple[int, ...]
    dropped: tuple[int, ...]


@dataclass(frozen=True)
class RevealedShare:
    owner: int  # whose secret this is a share of
    x: int
    y: bytes


@dataclass(frozen=True)
class UnmaskResponse:
    """Round 4, client -> server: shares of b_v for surviving neighbours v and of s_sk_v
    for dropped ones."""

    client_id: int
    self_shares: tuple[RevealedShare, ...]
    key_shares: tuple[RevealedShare, ...]
