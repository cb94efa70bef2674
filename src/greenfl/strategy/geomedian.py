"""The geometric median of the updates, by smoothed Weiszfeld iterations: RFA (Pillutla,
Kakade and Harchaoui, "Robust Aggregation for Federated Learning", IEEE TSP 2022).

The geometric median minimises the sum of Euclidean distances to the updates; its
breakdown point is 1/2, so it tolerates f < n/2 Byzantine updates (``max_byzantine(n) =
(n - 1) // 2``). Weiszfeld's iteration re-weighs each update by the inverse of its
distance to the current estimate, floored at ``smoothing`` (the paper's nu) so that an
estimate landing on an update does not divide by zero.

Unweighted by default: RFA weighs by local sample counts, but then the breakdown point is
in claimed samples, and a liar can claim many. ``weighted=True`` follows the paper (pair
it with the deployment's sample cap)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pydantic import Field

from greenfl.core.messages import ClientUpdate
from greenfl.core.registry import params
from greenfl.strategy.base import sort_flops
from greenfl.strategy.robust import coordinate_median
from greenfl.strategy.tolerance import ByzantineParams, RobustStrategy


def _distances(stacked: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """Each row's distance to ``centre``, summed in float64 one row at a time: near the
    median the objective changes below float32's resolution, which would stop the
    iteration early, and a whole float64 copy of the updates would double the memory."""
    return torch.stack(
        [torch.linalg.vector_norm(row - centre, dtype=torch.float64) for row in stacked]
    )


@params
class GeometricMedianParams(ByzantineParams):
    iterations: int = Field(10, ge=1, le=10_000, description="most Weiszfeld iterations per round")
    tolerance: float = Field(
        1e-6, ge=0, le=1, description="stop once the objective improves by at most this share"
    )
    smoothing: float = Field(
        1e-6, gt=0, le=1e6, description="floor of each distance (the paper's nu)"
    )
    weighted: bool = Field(
        False, description="weigh updates by their samples, as RFA does (pair with a sample cap)"
    )


class GeometricMedian(RobustStrategy):
    """RFA's smoothed Weiszfeld, started at the coordinate-wise median and run until the
    objective (the weighted sum of distances) improves by at most ``tolerance`` of
    itself, or for ``max_iterations`` iterations. The start matters: from the mean, which
    one update scaled x1e6 drags 1e5 away, Weiszfeld's linear convergence needs far more
    than the default 10 iterations to come back (measured: the model was lost).

    FLOPs, for k iterations: the starting median (a sort, n log2 n comparisons per
    coordinate, and the middle pair's mean, 2p), its distances (3np + n square roots) and
    objective (2n); per iteration the new weights (max, divide: 2n; their sum and
    normalisation: 2n), the weighted sum (2np), the distances and objective again
    (3np + 3n) and the stopping test (3); then the add to the model (p), plus 2n with
    ``weighted`` (normalising the sample weights):
    sort + 3np + 2p + 3n + p + k (5np + 7n + 3). ``aggregation_flops`` counts the k of
    the last ``aggregate`` over as many updates, or ``max_iterations`` (the bound) before
    any."""

    name = "geomedian"
    Params = GeometricMedianParams

    def __init__(self, params: GeometricMedianParams | None = None) -> None:
        p = params if params is not None else GeometricMedianParams()
        super().__init__(p)
        self.max_iterations = p.iterations
        self.tolerance = p.tolerance
        self.smoothing = p.smoothing
        self.weighted = p.weighted
        # the iterations the last aggregate ran, over how many updates: its FLOPs
        self.last_iterations: int | None = None
        self.last_num_updates: int | None = None

    def max_byzantine(self, num_updates: int) -> int:
        return (num_updates - 1) // 2

    def _aggregate_delta(
        self, global_params: torch.Tensor, updates: Sequence[ClientUpdate]
    ) -> torch.Tensor:
        stacked = torch.stack([u.delta for u in updates])
        n = len(updates)
        if self.weighted:
            alpha = torch.tensor([u.weight for u in updates], dtype=torch.float64)
            alpha = alpha / alpha.sum()
        else:
            alpha = torch.full((n,), 1.0 / n, dtype=torch.float64)
        estimate = coordinate_median(stacked.sort(dim=0).values)
        dist = _distances(stacked, estimate)
        objective = float(alpha @ dist)
        done = 0
        while done < self.max_iterations:
            beta = alpha / dist.clamp(min=self.smoothing)
            estimate = (beta / beta.sum()).to(stacked.dtype) @ stacked
            dist = _distances(stacked, estimate)
            improved, objective = objective - float(alpha @ dist), float(alpha @ dist)
            done += 1
            if abs(improved) <= self.tolerance * objective:
                break
        self.last_iterations, self.last_num_updates = done, n
        return estimate

    def _flops(self, num_updates: int, num_params: int) -> int:
        n, p = num_updates, num_params
        k = self.last_iterations if self.last_num_updates == n else self.max_iterations
        assert k is not None
        weights = 2 * n if self.weighted else 0
        start = sort_flops(n, p) + 2 * p + 3 * n * p + 3 * n
        return start + p + weights + k * (5 * n * p + 7 * n + 3)
