"""The Dataset protocol: what the engine needs from any federated dataset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

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
        """(features float32, labels int64) of one client."""
        ...

    def test_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Held-out data for central evaluation."""
        ...


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
    def from_lists(cls, parts: list[np.ndarray]) -> Partition:
        sizes = np.array([len(p) for p in parts], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        indices = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
        return cls(indices=indices, offsets=offsets)


class ArrayDataset:
    """A centrally held array dataset (e.g. digits) partitioned across clients."""

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

    def client_sizes(self) -> np.ndarray:
        return self.partition.sizes()

    def client_data(self, client_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.from_numpy(self.partition.of(client_id))
        return self._x[idx], self._y[idx]

    def test_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._x_test, self._y_test
