"""FedAvgM (Hsu et al., 2019): server momentum on the averaged delta."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from greenfl.core.messages import ClientUpdate, FitInstructions
from greenfl.strategy.base import mean_flops, weighted_mean_delta


class FedAvgM:
    name = "fedavgm"

    def __init__(self, server_lr: float | None = None, server_momentum: float = 0.9) -> None:
        self.server_lr = 1.0 if server_lr is None else server_lr
        self.server_momentum = server_momentum
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
