"""Partitioners: iid, dirichlet (label skew by alpha), shard (c classes per client).

All are deterministic by seed and give every client at least one sample."""

from __future__ import annotations

import numpy as np

from greenfl.core.errors import DataError
from greenfl.data.base import Partition


def _ensure_nonempty(parts: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Move one sample from the largest clients to each empty one. Skewed partitions of small
    datasets leave some clients empty; an FL client with no data cannot train."""
    parts = [p.copy() for p in parts]
    empty = [i for i, p in enumerate(parts) if len(p) == 0]
    for i in empty:
        donor = int(np.argmax([len(p) for p in parts]))
        if len(parts[donor]) < 2:
            raise DataError("not enough samples to give every client at least one")
        j = int(rng.integers(len(parts[donor])))
        parts[i] = parts[donor][j : j + 1]
        parts[donor] = np.delete(parts[donor], j)
    return parts


def iid(labels: np.ndarray, num_clients: int, seed: int) -> Partition:
    n = len(labels)
    if num_clients > n:
        raise DataError(f"data.num_clients ({num_clients}) exceeds the {n} training samples")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    # Near-equal sizes: the first n % k clients get one extra sample.
    sizes = np.full(num_clients, n // num_clients, dtype=np.int64)
    sizes[: n % num_clients] += 1
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return Partition(indices=perm.astype(np.int64), offsets=offsets)


def dirichlet(labels: np.ndarray, num_clients: int, alpha: float, seed: int) -> Partition:
    """Per class, split its samples across clients in Dirichlet(alpha) proportions."""
    if alpha <= 0:
        raise DataError("data.alpha must be > 0")
    n = len(labels)
    if num_clients > n:
        raise DataError(f"data.num_clients ({num_clients}) exceeds the {n} training samples")
    rng = np.random.default_rng(seed)
    buckets: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        props = rng.dirichlet(np.full(num_clients, alpha))
        cuts = (np.cumsum(props)[:-1] * len(idx)).astype(np.int64)
        for client, chunk in enumerate(np.split(idx, cuts)):
            if len(chunk):
                buckets[client].append(chunk)
    parts = [np.concatenate(b) if b else np.zeros(0, np.int64) for b in buckets]
    return Partition.from_lists(_ensure_nonempty(parts, rng))


def shard(labels: np.ndarray, num_clients: int, classes_per_client: int, seed: int) -> Partition:
    """Sort by label, cut into num_clients * c shards, deal c shards to each client
    (McMahan et al., 2017): each client sees about c classes."""
    n = len(labels)
    num_shards = num_clients * classes_per_client
    if num_shards > n:
        raise DataError(
            f"shard partition needs num_clients * classes_per_client ({num_shards}) "
            f"<= {n} training samples"
        )
    rng = np.random.default_rng(seed)
    order = np.argsort(labels * n + rng.permutation(n), kind="stable")
    shards = np.array_split(order, num_shards)
    deal = rng.permutation(num_shards).reshape(num_clients, classes_per_client)
    parts = [np.concatenate([shards[s] for s in row]) for row in deal]
    return Partition.from_lists(parts)


def make_partition(
    kind: str, labels: np.ndarray, num_clients: int, seed: int, alpha: float, classes: int
) -> Partition:
    if kind == "iid":
        return iid(labels, num_clients, seed)
    if kind == "dirichlet":
        return dirichlet(labels, num_clients, alpha, seed)
    if kind == "shard":
        return shard(labels, num_clients, classes, seed)
    raise DataError(f"unknown data.partition {kind!r}; choose iid, dirichlet or shard")
