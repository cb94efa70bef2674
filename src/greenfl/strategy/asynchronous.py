"""The asynchronous strategies (issue 30): the server applies updates as they arrive, each
trained from the global model of some earlier version, down-weighted by its staleness
(the server steps applied since that version).

Staleness weights s(tau), as Xie et al. (2019, "Asynchronous Federated Optimization") give
them:

    constant    s = 1
    polynomial  s = (1 + tau)^-a                      (FedBuff uses a = 0.5)
    hinge       s = 1 if tau <= b, else 1 / (a (tau - b) + 1)

FedBuff (Nguyen et al., AISTATS 2022) aggregates a buffer of K updates at once:

    x <- x + server_lr * sum_i w_i s_i d_i / sum_i w_i      (w_i: samples x work done)

so with every s_i = 1 and server_lr = 1 a buffer is FedAvg's step. FedAsync (Xie et al.)
mixes each update into the model on arrival, the client's model being its base plus its
delta:

    x <- (1 - alpha s) x + alpha s (base + d)  =  x + alpha s ((base - x) + d)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import Field

from greenfl.core.messages import ClientUpdate
from greenfl.core.registry import params
from greenfl.strategy.base import StatelessStrategy, mean_flops

StalenessKind = Literal["constant", "polynomial", "hinge"]
STALENESS_KINDS: tuple[str, ...] = ("constant", "polynomial", "hinge")


def staleness_weight(
    staleness: np.ndarray | int, kind: str, a: float = 0.5, b: float = 4.0
) -> np.ndarray:
    """s(tau) for each staleness (server steps since the update's base, >= 0)."""
    tau = np.asarray(staleness, dtype=np.float64)
    if (tau < 0).any():
        raise ValueError("staleness is a count of server steps, never negative")
    if kind == "constant":
        return np.ones_like(tau)
    if kind == "polynomial":
        return (1.0 + tau) ** (-a)
    if kind == "hinge":
        return 1.0 / (a * np.maximum(tau - b, 0.0) + 1.0)
    raise ValueError(f"unknown staleness weighting {kind!r} (one of {', '.join(STALENESS_KINDS)})")


class AsyncStrategy(StatelessStrategy):
    """Base of the strategies that weigh each update by its own staleness (the async loop
    hands the others, such as a robust aggregator of a buffer, deltas already scaled)."""

    staleness_aware: ClassVar[bool] = True


@params
class FedBuffParams:
    server_lr: float = Field(
        1.0, gt=0, le=1e3, description="server step size on the buffer's mean delta"
    )


class FedBuff(AsyncStrategy):
    name = "fedbuff"
    Params = FedBuffParams

    def __init__(self, params: FedBuffParams | None = None) -> None:
        self.server_lr = (params if params is not None else FedBuffParams()).server_lr

    def aggregate(
        self, global_params: torch.Tensor, updates: Sequence[ClientUpdate]
    ) -> torch.Tensor:
        if not updates:
            raise ValueError("cannot aggregate an empty buffer")
        w = torch.tensor([u.weight for u in updates], dtype=torch.float64)
        s = torch.tensor([u.staleness_weight for u in updates], dtype=torch.float64)
        coef = (self.server_lr * w * s / w.sum()).to(torch.float32)
        return global_params + coef @ torch.stack([u.delta for u in updates])

    def aggregation_flops(self, num_updates: int, num_params: int) -> int:
        # the weighted mean, then the server step (a multiply per coordinate)
        return mean_flops(num_updates, num_params) + num_params


@params
class FedAsyncParams:
    alpha: float = Field(
        0.6,
        gt=0,
        le=1,
        description="mixing weight of a fresh update (Xie et al. 2019 use 0.4-0.9); "
        "scaled by the staleness weight",
    )


class FedAsync(AsyncStrategy):
    name = "fedasync"
    Params = FedAsyncParams

    def __init__(self, params: FedAsyncParams | None = None) -> None:
        self.alpha = (params if params is not None else FedAsyncParams()).alpha

    def aggregate(
        self, global_params: torch.Tensor, updates: Sequence[ClientUpdate]
    ) -> torch.Tensor:
        """Each update mixed in turn, in arrival order (the async loop hands one at a time
        unless several arrive at the same instant)."""
        if not updates:
            raise ValueError("cannot aggregate an empty set of updates")
        x = global_params.clone()
        for u in updates:
            mix = self.alpha * u.staleness_weight
            base = x if u.base is None else u.base
            x = x + mix * ((base - x) + u.delta)
        return x

    def aggregation_flops(self, num_updates: int, num_params: int) -> int:
        # per update and coordinate: base - x, + delta, x mix, + x
        return 4 * num_updates * num_params
