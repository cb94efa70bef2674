"""Evaluation on clients' own test data: a fixed, seeded sample of clients, every
``eval.every`` rounds, summarised as LEAF and q-FFL report it (mean, 10th percentile, worst
decile). The central test set says how good the model is on average; this says for whom it
is not.

In simulation the engine holds every client's test split, so it evaluates them itself; its
cost is not charged to the footprint (federated evaluation on devices would cost a forward
pass per test sample on each client)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from greenfl.data.base import FederatedDataset
from greenfl.models.evaluate import ClientAccuracy, per_client_accuracy

_EVAL_STREAM = 9  # its own random stream: choosing the sample moves no other draw

CLIENT_ACC_COLUMNS = (
    "client_acc_mean",
    "client_acc_p10",
    "client_acc_worst_decile",
    "client_acc_clients",
)


class ClientEvaluator:
    def __init__(
        self,
        dataset: FederatedDataset,
        model: nn.Module,
        every: int,
        sample: int,
        seed: int,
        max_samples: int = 0,
    ) -> None:
        n = dataset.num_clients
        rng = np.random.default_rng([seed, _EVAL_STREAM])
        self.clients = np.arange(n) if n <= sample else np.sort(rng.choice(n, sample, False))
        self.dataset = dataset
        self.model = model
        self.every = every
        self.max_samples = max_samples
        self._seed = seed
        self._parts: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    def due(self, round_idx: int) -> bool:
        return self.every > 0 and round_idx % self.every == 0

    def evaluate(self, params: torch.Tensor) -> ClientAccuracy | None:
        """The sample's accuracy summary; None if no sampled client holds test data."""
        if self._parts is None:  # the sample's test data is small: load it once
            self._parts = [self._test_data(int(c)) for c in self.clients]
        accuracies = per_client_accuracy(self.model, params, self._parts)
        return ClientAccuracy.of(accuracies) if len(accuracies) else None

    def _test_data(self, client_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.dataset.client_test_data(client_id)
        if self.max_samples == 0 or len(y) <= self.max_samples:
            return x, y
        rng = np.random.default_rng([self._seed, _EVAL_STREAM, client_id])
        keep = torch.from_numpy(np.sort(rng.choice(len(y), self.max_samples, replace=False)))
        return x[keep], y[keep]

    def maybe(self, round_idx: int, params: torch.Tensor) -> ClientAccuracy | None:
        return self.evaluate(params) if self.due(round_idx) else None


def client_acc_columns(acc: ClientAccuracy | None) -> dict[str, float | int | None]:
    """The rounds table's client-accuracy columns (NULL in rounds that were not evaluated)."""
    if acc is None:
        return dict.fromkeys(CLIENT_ACC_COLUMNS)
    values = (acc.mean, acc.p10, acc.worst_decile, acc.clients)
    return dict(zip(CLIENT_ACC_COLUMNS, values, strict=True))
