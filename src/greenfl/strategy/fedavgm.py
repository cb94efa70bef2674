"""FedAvgM (Hsu et al., 2019): server momentum on the averaged delta."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pydantic import Field

from greenfl.core.messages import ClientUpdate, FitInstructions
from greenfl.core.registry import params
from greenfl.strategy.base import mean_flops, weighted_mean_delta


@params
class FedAvgMParams:
    server_lr: float = Field(1.0, gt=0, le=1e6, description="server step size")
    server_momentum: float = Field(0.9, ge=0, lt=1, description="server momentum")


class FedAvgM:
    name = "fedavgm"
    Params = FedAvgMParams

    def __init__(self, params: FedAvgMParams | None = None) -> None:
        p = params or FedAvgMParams()
        self.server_lr = p.server_lr
        self.server_momentum = p.server_momentum
        self.velocity: torch.Tensor | None = None

    def configure(self, round_idx: int, base: FitInstructions) -> FitInstructions:
        return base

    def aggregate(
        self, global_params: torch.Tensor, updates: Sequence[ClientUpdate]
    ) -> torch.Tensor:
        delta = weighted_mean_delta(updates)
        if self.velocity is None:
            self.velocity = torch.zeros_like(delta)
        self.velocity = self.server_momentum * self.velocity + delta
        return global_params + self.server_lr * self.velocity

    def aggregation_flops(self, num_updates: int, num_params: int) -> int:
        # the mean, then velocity = momentum * velocity + delta (2) and lr * velocity (1)
        return mean_flops(num_updates, num_params) + 3 * num_params

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {} if self.velocity is None else {"velocity": self.velocity}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.velocity = state.get("velocity")
