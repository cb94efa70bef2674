"""Accuracy and mean loss of a flat parameter vector on labelled data: what the server, a
client and the centralised estimate all measure."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from greenfl.core.params import set_flat


def evaluate(
    model: nn.Module, params: torch.Tensor, data: tuple[torch.Tensor, torch.Tensor]
) -> tuple[float, float]:
    set_flat(model, params)
    model.eval()
    x, y = data
    correct, loss_sum = 0, 0.0
    with torch.no_grad():
        for start in range(0, len(y), 4096):
            logits = model(x[start : start + 4096])
            yb = y[start : start + 4096]
            loss_sum += float(nn.functional.cross_entropy(logits, yb, reduction="sum"))
            correct += int((logits.argmax(1) == yb).sum())
    return correct / len(y), loss_sum / len(y)


def per_client_accuracy(
    model: nn.Module, params: torch.Tensor, parts: list[tuple[torch.Tensor, torch.Tensor]]
) -> np.ndarray:
    """Each client's accuracy on its own data, from one batched pass over all of it (a
    forward pass per client would cost a call per client for clients of ten samples)."""
    sizes = np.array([len(y) for _, y in parts], dtype=np.int64)
    if not len(parts) or sizes.sum() == 0:
        return np.zeros(0, dtype=np.float64)
    set_flat(model, params)
    model.eval()
    x = torch.cat([p[0] for p in parts])
    y = torch.cat([p[1] for p in parts])
    hits = np.empty(len(y), dtype=np.float64)
    with torch.no_grad():
        for start in range(0, len(y), 4096):
            logits = model(x[start : start + 4096])
            hits[start : start + 4096] = (logits.argmax(1) == y[start : start + 4096]).numpy()
    kept = sizes > 0
    firsts = np.concatenate([[0], np.cumsum(sizes)[:-1]])[kept]
    return np.add.reduceat(hits, firsts) / sizes[kept]


@dataclass(frozen=True)
class ClientAccuracy:
    """Accuracy over clients' own test data, as LEAF and q-FFL report it: the unweighted
    mean over clients, the 10th percentile (numpy's linear interpolation), and the mean of
    the worst decile (the ceil(n/10) lowest clients)."""

    mean: float
    p10: float
    worst_decile: float
    clients: int

    @classmethod
    def of(cls, accuracies: np.ndarray) -> ClientAccuracy:
        acc = np.sort(np.asarray(accuracies, dtype=np.float64))
        if not len(acc):
            raise ValueError("no client accuracies to summarise")
        worst = acc[: math.ceil(len(acc) / 10)]
        return cls(float(acc.mean()), float(np.percentile(acc, 10)), float(worst.mean()), len(acc))
