"""Who masks with whom: the complete graph (Bonawitz et al.), or a SecAgg+ neighbourhood
graph (Bell et al.) in which each client masks with, and shares its secrets with, only
``neighbours`` others. The graph is a Harary-style ring: the round's clients in an order
shuffled by a public seed, each joined to the k/2 before and the k/2 after it. The seed is
public and fixed before keys are seen; a random graph matters because the ring's
neighbourhoods are otherwise the server's choice."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from greenfl.secagg.encoding import FixedPoint
from greenfl.secagg.errors import SecAggError


@dataclass(frozen=True)
class RoundParams:
    """What the server fixes for one aggregation and tells every client."""

    round_tag: bytes  # binds keys and ciphertexts to this round (e.g. b"run-id|r7")
    vector_length: int
    encoding: FixedPoint
    threshold: int  # t: shares of a client's secret that reconstruct it
    neighbours: int | None = None  # k; None: the complete graph
    graph_seed: int = 0
    # Each client clips its input to this L2 norm before encoding, and the server refuses
    # a sum whose norm exceeds survivors x max_norm (plus the encoding's rounding); None:
    # no norm bound, only the per-value range.
    max_norm: float | None = None

    def __post_init__(self) -> None:
        if self.max_norm is not None and not (0 < self.max_norm < float("inf")):
            raise SecAggError(f"max_norm must be finite and > 0, got {self.max_norm}")


def default_threshold(degree: int) -> int:
    """t = a strict majority of the neighbourhood: two disjoint groups of survivors can
    never both reach t, and the round survives up to (k - 1) // 2 neighbours dropping."""
    return degree // 2 + 1


def neighbourhoods(ids: Sequence[int], k: int | None, seed: int) -> dict[int, tuple[int, ...]]:
    """Each client's neighbours (sorted). ``k`` None or >= len(ids) - 1: everyone; else the
    ring of k // 2 on either side (k rounded down to even, so the graph is regular)."""
    ids = sorted(int(i) for i in ids)
    if len(set(ids)) != len(ids):
        raise SecAggError("duplicate client ids")
    n = len(ids)
    if k is None or k >= n - 1:
        return {u: tuple(v for v in ids if v != u) for u in ids}
    half = k // 2
    if half < 1:
        raise SecAggError(f"neighbours = {k}: need at least 2")
    order = [ids[i] for i in np.random.default_rng(seed).permutation(n)]
    out: dict[int, set[int]] = {u: set() for u in ids}
    for pos, u in enumerate(order):
        for d in range(1, half + 1):
            v = order[(pos + d) % n]
            out[u].add(v)
            out[v].add(u)
    return {u: tuple(sorted(vs)) for u, vs in out.items()}


def degree(n: int, k: int | None) -> int:
    """The number of neighbours each of n clients has under ``neighbours = k``."""
    if k is None or k >= n - 1:
        return n - 1
    return 2 * (k // 2)
