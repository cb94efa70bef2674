"""Secure aggregation's messages (greenfl.secagg.messages) onto protobuf and back."""

from __future__ import annotations

from collections.abc import Iterable

from greenfl.deploy import greenfl_pb2 as pb
from greenfl.secagg.encoding import FixedPoint
from greenfl.secagg.graph import RoundParams
from greenfl.secagg.messages import AdvertiseKeys, EncryptedShare, RevealedShare


def params_to_pb(p: RoundParams, weight: float) -> pb.SecAggParams:
    return pb.SecAggParams(
        round_tag=p.round_tag,
        vector_length=p.vector_length,
        clip_range=p.encoding.clip_range,
        frac_bits=p.encoding.frac_bits,
        max_clients=p.encoding.max_clients,
        threshold=p.threshold,
        neighbours=p.neighbours or 0,
        graph_seed=p.graph_seed,
        weight=weight,
    )


def params_from_pb(m: pb.SecAggParams) -> RoundParams:
    enc = FixedPoint(float(m.clip_range), int(m.frac_bits), int(m.max_clients))
    return RoundParams(
        bytes(m.round_tag),
        int(m.vector_length),
        enc,
        int(m.threshold),
        int(m.neighbours) or None,
        int(m.graph_seed),
    )


def keys_to_pb(k: AdvertiseKeys) -> pb.SecAggNeighbour:
    return pb.SecAggNeighbour(client_id=k.client_id, keys=pb.SecAggKeys(c_pk=k.c_pk, s_pk=k.s_pk))


def keys_from_pb(m: pb.SecAggNeighbour) -> AdvertiseKeys:
    return AdvertiseKeys(int(m.client_id), bytes(m.keys.c_pk), bytes(m.keys.s_pk))


def shares_to_pb(shares: Iterable[EncryptedShare]) -> list[pb.SecAggShare]:
    return [
        pb.SecAggShare(
            sender=s.sender, recipient=s.recipient, nonce=s.nonce, ciphertext=s.ciphertext
        )
        for s in shares
    ]


def shares_from_pb(msgs: Iterable[pb.SecAggShare]) -> tuple[EncryptedShare, ...]:
    return tuple(
        EncryptedShare(int(m.sender), int(m.recipient), bytes(m.nonce), bytes(m.ciphertext))
        for m in msgs
    )


def revealed_to_pb(shares: Iterable[RevealedShare]) -> list[pb.SecAggRevealed]:
    return [pb.SecAggRevealed(owner=r.owner, x=r.x, y=r.y) for r in shares]


def revealed_from_pb(msgs: Iterable[pb.SecAggRevealed]) -> tuple[RevealedShare, ...]:
    return tuple(RevealedShare(int(m.owner), int(m.x), bytes(m.y)) for m in msgs)
