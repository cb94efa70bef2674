"""One epoch of plain mini-batch SGD on pooled data: the centralised reference and LiRA's
shadow models train the same way."""

from __future__ import annotations

import torch
from torch import nn


def sgd_epoch(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    gen: torch.Generator,
) -> None:
    """One pass over (x, y) in a random order drawn from ``gen``, cross-entropy loss, in
    place."""
    model.train()
    for idx in torch.randperm(len(y), generator=gen).split(batch_size):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
