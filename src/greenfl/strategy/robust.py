"""Robust aggregation against poisoned updates: coordinate-wise median and trimmed mean
(Yin et al., ICML 2018). Unweighted by design: weights would let a liar claim many samples."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from greenfl.core.messages import ClientUpdate
from greenfl.strategy.base import StatelessStrategy, sort_flops


class Median(StatelessStrategy):
    name = "median"

    def aggregate(
        self, global_params: torch.Tensor, updates: Sequence[ClientUpdate]
    ) -> torch.Tensor:
        stacked = torch.stack([u.delta for u in updates])
        # torch.median takes the lower middle for an even count; the coordinate-wise
        # median (numpy, Flower) averages the two middle values.
        ordered = stacked.sort(dim=0).values
        n = ordered.shape[0]
        return global_params + (ordered[(n - 1) // 2] + ordered[n // 2]) / 2

    def aggregation_flops(self, num_updates: int, num_params: int) -> int:
        # the sort, then the two middle values' mean (2) and the add to the model (1)
        return sort_flops(num_updates, num_params) + 3 * num_params


def trim_count(trim_fraction: float, num_updates: int) -> int:
    """Updates cut per side: ``trim_fraction`` of them, and at least one whenever a trim is
    asked for and one remains in the middle (int(0.1 n) is 0 below 10 updates, which would
    make the trimmed mean a plain mean for the small cohorts deployments run)."""
    if trim_fraction <= 0:
        return 0
    cut = max(1, int(trim_fraction * num_updates))
    return cut if num_updates - 2 * cut >= 1 else 0


class TrimmedMean(StatelessStrategy):
    name = "trimmed_mean"
    min_updates = 3  # one cut per side, one kept

    def __init__(self, trim_fraction: float = 0.1) -> None:
        self.trim_fraction = trim_fraction

    def aggregate(
        self, global_params: torch.Tensor, updates: Sequence[ClientUpdate]
    ) -> torch.Tensor:
        stacked = torch.stack([u.delta for u in updates]).sort(dim=0).values
        cut = trim_count(self.trim_fraction, len(updates))
        return global_params + stacked[cut : len(updates) - cut].mean(dim=0)

    def aggregation_flops(self, num_updates: int, num_params: int) -> int:
        kept = num_updates - 2 * trim_count(self.trim_fraction, num_updates)
        # the sort, the kept values' sum and one divide, then the add to the model
        return sort_flops(num_updates, num_params) + (kept + 1) * num_params
