"""The Dataset protocol: what the engine needs from any federated dataset; and what a
registered dataset source declares (its Params, its defaults, how it loads)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class FederatedDataset(Protocol):
    """A dataset split across clients. Client data is produced on demand, by index, so a
    population of a million clients never holds a million copies."""

    name: str
    num_clients: int
    input_shape: tuple[int, ...]
    num_classes: int

    def client_sizes(self) -> np.ndarray:
        """Samples per client, int64, shape (num_clients,)."""
        ...

    def client_data(self, client_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, labels int64) of one client. Features are float32, or int64 token ids
        for sequence datasets (e.g. shakespeare's 80-character windows)."""
        ...

    def client_test_data(self, client_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The client's own held-out data, from its own distribution (LEAF's per-user test
        split where the dataset has one). Used for per-client accuracy and fairness."""
        ...

    def test_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Held-out data for central evaluation."""
        ...


@dataclass(frozen=True)
class DataSettings:
    """What every dataset source is handed besides its own Params: the ``[data]`` keys all
    datasets share, and the run's seed."""

    num_clients: int = 100
    seed: int = 0
    partition: str = "iid"  # iid | dirichlet | shard
    alpha: float = 0.5  # Dirichlet concentration
    classes_per_client: int = 2  # shard partition
    test_fraction: float = 0.2
    path: str | None = None  # where an on-disk dataset lives
    natural_id: str | None = None  # a table's column naming each sample's client
    feature_column: str | None = None
    label_column: str = "label"


_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class DatasetDefaults:
    """What a dataset brings to a config that leaves it unsaid: its standard model (for
    ``model.name = "auto"``) and sensible ``[train]`` and ``[eval]`` keys, so that naming
    the dataset alone gives a run of sensible cost."""

    model: str = "mlp"
    train: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    eval: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)


@runtime_checkable
class DatasetSource(Protocol):
    """A registered dataset (``greenfl.data.DATASETS``): its own ``Params``, its
    ``defaults``, whether it is read from ``data.path``, and ``load``."""

    Params: ClassVar[type]
    defaults: ClassVar[DatasetDefaults]
    reads_path: ClassVar[bool]

    @classmethod
    def load(cls, settings: DataSettings, params: Any) -> FederatedDataset: ...


@dataclass(frozen=True)
class Partition:
    """Client -> sample indices in CSR form: client i holds indices[offsets[i]:offsets[i+1]].
    Two flat arrays instead of a list of arrays, so a million clients cost two arrays."""

    indices: np.ndarray
    offsets: np.ndarray

    @property
    def num_clients(self) -> int:
        return len(self.offsets) - 1

    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets).astype(np.int64)

    def of(self, client_id: int) -> np.ndarray:
        return self.indices[self.offsets[client_id] : self.offsets[client_id + 1]]

    @classmethod
    def contiguous(cls, sizes: np.ndarray | list[int]) -> Partition:
        """Client i holds the next sizes[i] samples, in order (data stored client by client)."""
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        return cls(indices=np.arange(offsets[-1], dtype=np.int64), offsets=offsets)

    @classmethod
    def from_lists(cls, parts: list[np.ndarray]) -> Partition:
        sizes = np.array([len(p) for p in parts], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        indices = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
        return cls(indices=indices, offsets=offsets)


class ArrayDataset:
    """A centrally held array dataset (e.g. digits) partitioned across clients.

    ``test_partition`` assigns each client its own test samples. Without one, each client
    gets test samples drawn to match its training labels (``label_matched_test``), so its
    test accuracy measures the model on that client's distribution."""

    def __init__(
        self,
        name: str,
        x_train: np.ndarray,
        y_train: np.ndarray,
        x_test: np.ndarray,
        y_test: np.ndarray,
        partition: Partition,
        input_shape: tuple[int, ...],
        num_classes: int,
        test_partition: Partition | None = None,
        seed: int = 0,
    ) -> None:
        self.name = name
        self.num_clients = partition.num_clients
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.partition = partition
        self._x = torch.as_tensor(x_train, dtype=torch.float32).reshape(-1, *input_shape)
        self._y = torch.as_tensor(y_train, dtype=torch.int64)
        self._x_test = torch.as_tensor(x_test, dtype=torch.float32).reshape(-1, *input_shape)
        self._y_test = torch.as_tensor(y_test, dtype=torch.int64)
        self.train_labels = np.asarray(y_train, dtype=np.int64)
        self._y_test_np = np.asarray(y_test, dtype=np.int64)
        self._test_partition = test_partition
        self._seed = seed
        self._pools: list[np.ndarray] | None = None

    def client_sizes(self) -> np.ndarray:
        return self.partition.sizes()

    def client_data(self, client_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.from_numpy(self.partition.of(client_id))
        return self._x[idx], self._y[idx]

    def client_test_data(self, client_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._test_partition is not None:
            idx = self._test_partition.of(client_id)
        else:
            if self._pools is None:
                self._pools = class_pools(self._y_test_np, self.train_labels)
            ratio = len(self._y_test_np) / max(len(self.train_labels), 1)
            labels = self.train_labels[self.partition.of(client_id)]
            idx = matched_test_indices(labels, self._pools, ratio, self._seed, client_id)
        t = torch.from_numpy(idx)
        return self._x_test[t], self._y_test[t]

    def test_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._x_test, self._y_test


MIN_CLIENT_TEST = 10  # test samples per client at least: fewer make its accuracy noise
_TEST_MATCH_STREAM = 7


def label_matched_test(
    train_labels: np.ndarray, partition: Partition, test_labels: np.ndarray, seed: int
) -> Partition:
    """Every client's ``matched_test_indices``, as a Partition."""
    pools = class_pools(test_labels, train_labels)
    ratio = len(test_labels) / max(len(train_labels), 1)
    return Partition.from_lists(
        [
            matched_test_indices(train_labels[partition.of(c)], pools, ratio, seed, c)
            for c in range(partition.num_clients)
        ]
    )


def class_pools(test_labels: np.ndarray, train_labels: np.ndarray) -> list[np.ndarray]:
    """The test set's indices of each class (classes up to the largest label of either)."""
    num_classes = int(max(train_labels.max(initial=0), test_labels.max(initial=0))) + 1
    return [np.flatnonzero(test_labels == c) for c in range(num_classes)]


def matched_test_indices(
    labels: np.ndarray, pools: list[np.ndarray], ratio: float, seed: int, client_id: int
) -> np.ndarray:
    """One client's test indices into the central test set, drawn to follow its training
    label mix ``labels``: max(MIN_CLIENT_TEST, its share ``ratio`` of the test set) samples,
    allotted to its classes by largest remainder; within a class without replacement while
    the class has enough, with replacement beyond. Clients may share test samples (the
    central set is only so large). Each client has its own random stream, so one client's
    test data is derived without touching the others'."""
    counts = np.bincount(labels, minlength=len(pools)).astype(np.float64)[: len(pools)]
    counts[[len(p) == 0 for p in pools]] = 0.0  # classes the test set lacks
    if counts.sum() == 0:
        return np.zeros(0, np.int64)
    rng = np.random.default_rng([seed, _TEST_MATCH_STREAM, client_id])
    want = max(MIN_CLIENT_TEST, int(round(len(labels) * ratio)))
    share = counts / counts.sum() * want
    alloc = np.floor(share).astype(np.int64)
    extra = want - int(alloc.sum())
    alloc[np.argsort(-(share - alloc), kind="stable")[:extra]] += 1
    picked = [
        rng.choice(pools[c], int(alloc[c]), replace=int(alloc[c]) > len(pools[c]))
        for c in np.flatnonzero(alloc)
    ]
    return np.sort(np.concatenate(picked)).astype(np.int64)
