"""Distance-based Byzantine-robust aggregation: Krum and Multi-Krum (Blanchard et al.,
NeurIPS 2017) and Bulyan (El Mhamdi et al., ICML 2018).

All three are unweighted by design, as in the papers: each update is one vote, since a
liar could claim many samples. Krum's score of an update is the sum of its squared
distances to its ``n - f - 2`` nearest neighbours; an update far from the honest cluster
scores badly. Ties go to the update listed first (argmin and stable sorts), so a round is
repeatable."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pydantic import Field

from greenfl.core.messages import ClientUpdate
from greenfl.core.registry import params
from greenfl.strategy.base import sort_flops
from greenfl.strategy.robust import coordinate_median
from greenfl.strategy.tolerance import ByzantineParams, RobustStrategy


def pairwise_sq_dists(stacked: torch.Tensor) -> torch.Tensor:
    """Squared L2 distances between the rows, in float64: the direct difference, not the
    ``|a|^2 + |b|^2 - 2ab`` shortcut, whose cancellation can misorder near neighbours."""
    x = stacked.to(torch.float64)
    return torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist").square()


def krum_scores(sq_dists: torch.Tensor, num_neighbours: int) -> torch.Tensor:
    """Each row's sum of its ``num_neighbours`` smallest squared distances to the others."""
    others = sq_dists.clone()
    others.fill_diagonal_(float("inf"))  # an update is not its own neighbour
    return others.topk(num_neighbours, dim=1, largest=False).values.sum(dim=1)


def pairwise_flops(num_updates: int, num_params: int) -> int:
    """n(n-1)/2 distances of 3p each: a subtract, a square and an add per coordinate."""
    return num_updates * (num_updates - 1) // 2 * 3 * num_params


def scores_flops(num_updates: int, num_neighbours: int) -> int:
    """Each of n updates sorts its n-1 distances and adds its k smallest (k-1 adds)."""
    return num_updates * (sort_flops(num_updates - 1, 1) + num_neighbours - 1)


def unweighted_mean_flops(num_kept: int, num_params: int) -> int:
    """m vectors summed (m-1 adds), one divide, then the add to the model: (m+1)p."""
    return (num_kept + 1) * num_params


class Krum(RobustStrategy):
    """Krum: the single update with the lowest score becomes the round's delta.

    Tolerance: n >= 2f + 3, so ``max_byzantine(n) = (n - 3) // 2`` (-1 below 3 updates:
    with fewer, no update has a neighbour to be scored against).

    FLOPs: 3p n(n-1)/2 for the distances, n (sort(n-1) + k - 1) for the scores with
    k = n - f - 2, n - 1 comparisons for the argmin, p for the add to the model."""

    name = "krum"

    def max_byzantine(self, num_updates: int) -> int:
        return max(-1, (num_updates - 3) // 2)

    def neighbours(self, num_updates: int) -> int:
        return num_updates - self.num_byzantine - 2

    def scores(self, updates: Sequence[ClientUpdate]) -> torch.Tensor:
        """The Krum score of each update (float64), lower is more central."""
        stacked = torch.stack([u.delta for u in updates])
        return krum_scores(pairwise_sq_dists(stacked), self.neighbours(len(updates)))

    def _aggregate_delta(
        self, global_params: torch.Tensor, updates: Sequence[ClientUpdate]
    ) -> torch.Tensor:
        return updates[int(self.scores(updates).argmin())].delta.clone()

    def _flops(self, num_updates: int, num_params: int) -> int:
        n, p = num_updates, num_params
        return pairwise_flops(n, p) + scores_flops(n, self.neighbours(n)) + (n - 1) + p


@params
class MultiKrumParams(ByzantineParams):
    selected: int | None = Field(
        None, ge=1, le=100_000, description="updates averaged, m (none: n - f)"
    )


class MultiKrum(Krum):
    """Multi-Krum: the unweighted mean of the ``m`` updates with the lowest Krum scores.

    ``selected`` is m; None (the default) takes m = n - f, every update the scores
    cannot rule out. A configured m above n - f is cut to n - f when drop-outs shrink the
    round, so that the mean never has to include an update past the tolerance. Tolerance
    as Krum: n >= 2f + 3.

    FLOPs: Krum's distances and scores, a sort of the n scores (n log2 n) to pick the m
    best, and their mean added to the model: (m + 1)p."""

    name = "multikrum"
    Params = MultiKrumParams

    def __init__(self, params: MultiKrumParams | None = None) -> None:
        p = params if params is not None else MultiKrumParams()
        super().__init__(p)
        self.num_selected = p.selected

    def selected_count(self, num_updates: int) -> int:
        """m for a round of ``num_updates`` updates."""
        most = num_updates - self.num_byzantine
        return most if self.num_selected is None else min(self.num_selected, most)

    def selection(self, updates: Sequence[ClientUpdate]) -> list[int]:
        """The indices of the m best-scoring updates, best first."""
        order = torch.argsort(self.scores(updates), stable=True)
        return [int(i) for i in order[: self.selected_count(len(updates))]]

    def _aggregate_delta(
        self, global_params: torch.Tensor, updates: Sequence[ClientUpdate]
    ) -> torch.Tensor:
        return torch.stack([updates[i].delta for i in self.selection(updates)]).mean(dim=0)

    def _flops(self, num_updates: int, num_params: int) -> int:
        n, p = num_updates, num_params
        return (
            pairwise_flops(n, p)
            + scores_flops(n, self.neighbours(n))
            + sort_flops(n, 1)
            + unweighted_mean_flops(self.selected_count(n), p)
        )


class Bulyan(RobustStrategy):
    """Bulyan: Krum applied recursively picks theta = n - 2f updates (each pick leaves the
    pool, the scores are recomputed over the rest with the distances computed once); then,
    per coordinate, the mean of the beta = theta - 2f selected values closest to their
    median.

    Tolerance: n >= 4f + 3, so ``max_byzantine(n) = (n - 3) // 4``. In the last picks the
    pool is down to 2f + 1 updates, where n - f - 2 neighbours would be fewer than one:
    the score then uses at least one neighbour (and at most all the others). With f = 0,
    theta = beta = n and Bulyan is the plain unweighted mean, computed as such.

    FLOPs (f > 0): 3p n(n-1)/2 for the distances; for each pool size r from n down to
    2f + 1, r (sort(r-1) + k_r - 1) + (r - 1) for the scores and the argmin; per
    coordinate a sort of theta values (theta log2 theta), the median (2), the distances
    to it (2 theta), a sort of those (theta log2 theta) and the mean of beta added to the
    model (beta + 1). With f = 0: (n + 1)p."""

    name = "bulyan"

    def max_byzantine(self, num_updates: int) -> int:
        return max(-1, (num_updates - 3) // 4)

    def neighbours(self, pool_size: int) -> int:
        return min(max(1, pool_size - self.num_byzantine - 2), pool_size - 1)

    def selection(self, updates: Sequence[ClientUpdate]) -> list[int]:
        """The theta updates Krum picks one by one, in the order picked."""
        n, f = len(updates), self.num_byzantine
        sq_dists = pairwise_sq_dists(torch.stack([u.delta for u in updates]))
        pool, picked = list(range(n)), []
        for _ in range(n - 2 * f):  # the pool never drops below 2f + 1 >= 3
            sub = sq_dists[pool][:, pool]
            best = int(krum_scores(sub, self.neighbours(len(pool))).argmin())
            picked.append(pool.pop(best))
        return picked

    def _aggregate_delta(
        self, global_params: torch.Tensor, updates: Sequence[ClientUpdate]
    ) -> torch.Tensor:
        stacked = torch.stack([u.delta for u in updates])
        f = self.num_byzantine
        if f == 0:
            return stacked.mean(dim=0)
        chosen = stacked[self.selection(updates)].sort(dim=0).values
        beta = chosen.shape[0] - 2 * f
        gap = (chosen - coordinate_median(chosen)).abs()
        # sorted values with a stable sort: among equally close values the smaller wins
        nearest = torch.argsort(gap, dim=0, stable=True)[:beta]
        return chosen.gather(0, nearest).mean(dim=0)

    def _flops(self, num_updates: int, num_params: int) -> int:
        n, p, f = num_updates, num_params, self.num_byzantine
        if f == 0:
            return unweighted_mean_flops(n, p)
        theta = n - 2 * f
        beta = theta - 2 * f
        picks = sum(scores_flops(r, self.neighbours(r)) + (r - 1) for r in range(n, n - theta, -1))
        per_coordinate = 2 * sort_flops(theta, 1) + 2 + 2 * theta + beta + 1
        return pairwise_flops(n, p) + picks + per_coordinate * p
