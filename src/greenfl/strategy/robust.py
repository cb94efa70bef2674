"""Robust aggregation against poisoned updates: coordinate-wise median and trimmed mean
(Yin et al., ICML 2018). Unweighted by design, as in the paper: weights would let a liar
claim many samples and buy the majority a robust rule counts on.

The rounds where too few updates arrive for ``num_byzantine`` keep the global model
unchanged (``tolerance.RobustStrategy``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pydantic import Field

from greenfl.core.messages import ClientUpdate
from greenfl.core.registry import params
from greenfl.strategy.base import sort_flops
from greenfl.strategy.tolerance import ByzantineParams, RobustStrategy


def coordinate_median(ordered: torch.Tensor) -> torch.Tensor:
    """The median of each column of values sorted along dim 0. torch.median takes the lower
    middle for an even count; the coordinate-wise median (numpy, Flower) averages the two
    middle values."""
    n = ordered.shape[0]
    return (ordered[(n - 1) // 2] + ordered[n // 2]) / 2


class Median(RobustStrategy):
    """Coordinate-wise median. Tolerates f < n/2 Byzantine updates (its breakdown point)."""

    name = "median"

    def max_byzantine(self, num_updates: int) -> int:
        return (num_updates - 1) // 2

    def _aggregate_delta(
        self, global_params: torch.Tensor, updates: Sequence[ClientUpdate]
    ) -> torch.Tensor:
        return coordinate_median(torch.stack([u.delta for u in updates]).sort(dim=0).values)

    def _flops(self, num_updates: int, num_params: int) -> int:
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


@params
class TrimmedMeanParams(ByzantineParams):
    trim_fraction: float = Field(
        0.1,
        ge=0,
        lt=0.5,
        description="share of the updates cut at each end, per coordinate (at least one "
        "whenever above 0 and one update remains in the middle)",
    )


class TrimmedMean(RobustStrategy):
    """Coordinate-wise mean after cutting ``trim_count`` values at each end. Tolerates as
    many Byzantine updates as it cuts per side: f <= trim_count(trim_fraction, n)."""

    name = "trimmed_mean"
    Params = TrimmedMeanParams

    def __init__(self, params: TrimmedMeanParams | None = None) -> None:
        p = params if params is not None else TrimmedMeanParams()
        super().__init__(p)
        self.trim_fraction = p.trim_fraction
        if self.trim_fraction > 0:
            self.min_updates = 3
            self.min_updates_why = "cuts one update per side and keeps one"

    def max_byzantine(self, num_updates: int) -> int:
        return trim_count(self.trim_fraction, num_updates) if num_updates >= 1 else -1

    def share_hint(self, share: float) -> str:
        return (
            f"The cut per side (strategy.params.trim_fraction = {self.trim_fraction:g}) must "
            f"reach the attackers' share: set it to at least {share:g} (below 0.5)"
        )

    def _aggregate_delta(
        self, global_params: torch.Tensor, updates: Sequence[ClientUpdate]
    ) -> torch.Tensor:
        stacked = torch.stack([u.delta for u in updates]).sort(dim=0).values
        cut = trim_count(self.trim_fraction, len(updates))
        return stacked[cut : len(updates) - cut].mean(dim=0)

    def _flops(self, num_updates: int, num_params: int) -> int:
        kept = num_updates - 2 * trim_count(self.trim_fraction, num_updates)
        # the sort, the kept values' sum and one divide, then the add to the model
        return sort_flops(num_updates, num_params) + (kept + 1) * num_params
