"""Accuracy and mean loss of a flat parameter vector on labelled data: what the server, a
client and the centralised estimate all measure."""

from __future__ import annotations

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
