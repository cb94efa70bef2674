"""Oort (Lai et al., OSDI 2021): statistical utility x system speed, with exploration.

Utility of an explored client is |B_i| * loss_i (self-reports clipped to the peers'
``clip_percentile``-th percentile: greenfl.selection.utility) plus a staleness bonus
sqrt(0.1 ln R / L_i) (L_i: the round it was last picked), times (T / t_i)^alpha when its
expected duration t_i exceeds the preferred round duration T. A share epsilon of the cohort
(decaying each round) goes to unexplored clients, faster ones first; the rest is sampled,
in proportion to utility, among explored clients within 95% of the k-th best utility."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from greenfl.core.registry import params
from greenfl.selection.base import SelectionContext
from greenfl.selection.utility import (
    clip_percentile_field,
    exploration_share,
    require_estimates,
    statistical_utility,
)


@params
class OortParams:
    preferred_duration_s: float | None = Field(
        None, gt=0, description="slower clients are penalised (none: 95th pct of the cohort)"
    )
    straggler_penalty: float = Field(2.0, ge=0, le=100, description="exponent of the penalty")
    exploration: float = Field(0.9, ge=0, le=1, description="initial exploration share")
    exploration_decay: float = Field(
        0.98, gt=0, le=1, description="exploration share kept each round"
    )
    min_exploration: float = Field(0.2, ge=0, le=1, description="floor of the exploration share")
    cutoff: float = Field(
        0.95,
        gt=0,
        le=1,
        description="explored clients within this share of the k-th best utility are sampled",
    )
    clip_percentile: float = clip_percentile_field()


class OortSelector:
    name = "oort"
    Params = OortParams
    needs_estimates = True

    def __init__(self, params: OortParams | None = None) -> None:
        p = params if params is not None else OortParams()
        self.preferred_duration_s = p.preferred_duration_s
        self.alpha = p.straggler_penalty
        self.exploration = p.exploration
        self.decay = p.exploration_decay
        self.min_exploration = p.min_exploration
        self.cutoff = p.cutoff
        self.clip_percentile = p.clip_percentile

    def utility(self, idx: np.ndarray, candidates: np.ndarray, ctx: SelectionContext) -> np.ndarray:
        """Oort utility of candidates[idx] (the estimates are aligned with ``candidates``)."""
        _, _, duration_s = require_estimates(ctx, self.name)
        clients = candidates[idx]
        u = statistical_utility(clients, ctx, self.clip_percentile)
        last = ctx.last_selected[clients].astype(np.float64)
        staleness = np.sqrt(0.1 * np.log(max(ctx.round_idx, 2)) / np.maximum(last, 1.0))
        u = u + np.where(last > 0, staleness, 0.0)
        pref = self.preferred_duration_s
        if pref is None:
            pref = float(np.percentile(duration_s, 95)) if len(duration_s) else 1.0
        t = duration_s[idx]
        penalty = np.where(t > pref, (pref / np.maximum(t, 1e-12)) ** self.alpha, 1.0)
        return u * penalty

    def select(
        self, candidates: np.ndarray, k: int, ctx: SelectionContext, rng: np.random.Generator
    ) -> np.ndarray:
        k = min(k, len(candidates))
        if k == 0:
            return candidates[:0]
        _, _, duration_s = require_estimates(ctx, self.name)
        explored = ctx.last_selected[candidates] >= 0
        eps = exploration_share(self.exploration, self.decay, self.min_exploration, ctx.round_idx)
        n_unexplored = int((~explored).sum())
        n_explore = min(n_unexplored, int(round(k * eps)))
        n_exploit = min(k - n_explore, int(explored.sum()))
        n_explore = min(n_unexplored, k - n_exploit)  # too few explored: explore more
        picked: list[np.ndarray] = []
        if n_exploit:
            idx = np.flatnonzero(explored)
            u = self.utility(idx, candidates, ctx)
            kth = np.sort(u)[::-1][n_exploit - 1]
            pool = idx[u >= self.cutoff * kth]
            pu = u[u >= self.cutoff * kth]
            picked.append(
                candidates[rng.choice(pool, size=n_exploit, replace=False, p=pu / pu.sum())]
            )
        if n_explore:
            idx = np.flatnonzero(~explored)
            speed = 1.0 / np.maximum(duration_s[idx], 1e-12)
            picked.append(
                candidates[rng.choice(idx, size=n_explore, replace=False, p=speed / speed.sum())]
            )
        return np.sort(np.concatenate(picked))
