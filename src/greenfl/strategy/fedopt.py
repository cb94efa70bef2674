"""The FedOpt family (Reddi et al., ICLR 2021): the averaged delta is a pseudo-gradient
for a server-side adaptive optimiser.

    m = beta1 m + (1 - beta1) d
    adagrad: v = v + d^2
    adam:    v = beta2 v + (1 - beta2) d^2
    yogi:    v = v - (1 - beta2) d^2 sign(v - d^2)
    x = x + server_lr * m / (sqrt(v) + tau)

m and v start at zero (as in Flower), without bias correction (as in the paper's Algorithm 2).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pydantic import Field

from greenfl.core.messages import ClientUpdate, FitInstructions
from greenfl.core.registry import params
from greenfl.strategy.base import mean_flops, weighted_mean_delta


# Each optimiser's own server step (Flower's defaults): one shared 1.0 left FedAdam and
# FedYogi at chance on the quickstart.
@params
class FedAdamParams:
    server_lr: float = Field(0.1, gt=0, le=1e6, description="server step size")
    beta1: float = Field(0.9, ge=0, lt=1, description="first-moment decay")
    beta2: float = Field(0.99, ge=0, lt=1, description="second-moment decay")
    tau: float = Field(1e-3, gt=0, le=1e6, description="adaptivity (added to sqrt(v))")


@params
class FedAdagradParams(FedAdamParams):
    pass


@params
class FedYogiParams(FedAdamParams):
    server_lr: float = Field(0.01, gt=0, le=1e6, description="server step size")


class FedOpt:
    name = "fedopt"
    Params: type = FedAdamParams
    v_flops = 3  # per coordinate, the second moment's update (each optimiser's own)

    def __init__(self, params: FedAdamParams | None = None) -> None:
        p = params if params is not None else self.Params()
        self.server_lr = p.server_lr
        self.beta1 = p.beta1
        self.beta2 = p.beta2
        self.tau = p.tau
        self.m: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    def configure(self, round_idx: int, base: FitInstructions) -> FitInstructions:
        return base

    def _second_moment(self, v: torch.Tensor, d2: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def aggregate(
        self, global_params: torch.Tensor, updates: Sequence[ClientUpdate]
    ) -> torch.Tensor:
        delta = weighted_mean_delta(updates)
        if self.m is None or self.v is None:
            self.m = torch.zeros_like(delta)
            self.v = torch.zeros_like(delta)
        self.m = self.beta1 * self.m + (1 - self.beta1) * delta
        self.v = self._second_moment(self.v, delta * delta)
        return global_params + self.server_lr * self.m / (self.v.sqrt() + self.tau)

    def aggregation_flops(self, num_updates: int, num_params: int) -> int:
        # the mean; m's update (3), delta^2 (1), v's update (v_flops), then
        # lr * m / (sqrt(v) + tau) (4)
        return mean_flops(num_updates, num_params) + (8 + self.v_flops) * num_params

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {} if self.m is None or self.v is None else {"m": self.m, "v": self.v}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.m = state.get("m")
        self.v = state.get("v")


class FedAdagrad(FedOpt):
    name = "fedadagrad"
    Params = FedAdagradParams

    v_flops = 1

    def _second_moment(self, v: torch.Tensor, d2: torch.Tensor) -> torch.Tensor:
        return v + d2


class FedAdam(FedOpt):
    name = "fedadam"
    Params = FedAdamParams

    v_flops = 3

    def _second_moment(self, v: torch.Tensor, d2: torch.Tensor) -> torch.Tensor:
        return self.beta2 * v + (1 - self.beta2) * d2


class FedYogi(FedOpt):
    name = "fedyogi"
    Params = FedYogiParams

    v_flops = 5

    def _second_moment(self, v: torch.Tensor, d2: torch.Tensor) -> torch.Tensor:
        return v - (1 - self.beta2) * d2 * torch.sign(v - d2)
