"""FedAvg (McMahan et al., 2017): the sample-weighted average of client models."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from greenfl.core.messages import ClientUpdate
from greenfl.strategy.base import StatelessStrategy, weighted_mean_delta


class FedAvg(StatelessStrategy):
    name = "fedavg"

    def aggregate(
        self, global_params: torch.Tensor, updates: Sequence[ClientUpdate]
    ) -> torch.Tensor:
        return global_params + weighted_mean_delta(updates)
