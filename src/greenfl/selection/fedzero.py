"""FedZero-style selection (Wiesner et al., "FedZero: Leveraging Renewable Excess Energy in
Federated Learning", e-Energy 2024), on greenfl's fleet model.

FedZero trains only where there is excess clean energy and spare capacity in the coming
round window, picks the most useful of those clients, and lets each train between a min and
a max number of local epochs, as much as its window allows. On greenfl's fleet:

- spare capacity: the client is available now (``fleet.availability``) and its modelled
  work for ``min_epochs`` fits the round window (``fleet.deadline_s``);
- clean energy: the forecast gCO2e per kWh of its grid over its active interval (trace,
  hour-of-day profile or annual mean; embodied carbon included) is among the lowest
  ``clean_share`` of the eligible clients (never fewer than k of them);
- utility: Oort's statistical utility (greenfl.selection.utility), discounted by how often
  the client already took part (FedZero's fairness term);
- adaptive epochs: the round asks ``train.local_epochs`` (the max); a client the window
  cuts short sends the steps it finished (``fleet.partial_work = "aggregate"``, which
  ``selection.name = "fedzero"`` requires).

Not modelled: FedZero's per-domain renewable excess forecasts and battery states (greenfl's
fleet has grid intensity, not local generation), and its MIP solver (a greedy ranking)."""

from __future__ import annotations

import math

import numpy as np
from pydantic import Field

from greenfl.core.registry import params
from greenfl.core.units import J_PER_KWH
from greenfl.selection.base import SelectionContext
from greenfl.selection.utility import (
    clip_percentile_field,
    require_estimates,
    statistical_utility,
)


@params
class FedZeroParams:
    min_epochs: int = Field(
        1, ge=1, le=100_000, description="least local epochs a client must fit in the window"
    )
    clean_share: float = Field(
        0.5, gt=0, le=1, description="share of eligible clients with the cleanest grid"
    )
    window_s: float | None = Field(
        None, gt=0, description="the round window (none: the run's fleet.deadline_s)"
    )
    local_epochs: int | None = Field(
        None, ge=1, le=100_000, description="the most epochs asked (none: train.local_epochs)"
    )
    clip_percentile: float = clip_percentile_field()


class FedZeroSelector:
    name = "fedzero"
    Params = FedZeroParams
    needs_estimates = True

    def __init__(self, params: FedZeroParams | None = None) -> None:
        p = params if params is not None else FedZeroParams()
        local_epochs = p.local_epochs or 1
        if not 1 <= p.min_epochs <= local_epochs:
            raise ValueError(
                f"min_epochs ({p.min_epochs}) must be in [1, train.local_epochs ({local_epochs})]"
            )
        self.window_s = p.window_s if p.window_s is not None else math.inf
        self.min_share = p.min_epochs / local_epochs
        self.clean_share = p.clean_share
        self.clip_percentile = p.clip_percentile

    def eligible(self, ctx: SelectionContext) -> np.ndarray:
        """Mask of the candidates whose min-epochs work fits the window. The estimate is of
        the max epochs; the min's is taken as that x min/max (compute dominates)."""
        _, _, duration_s = require_estimates(ctx, self.name)
        return duration_s * self.min_share <= self.window_s

    def select(
        self, candidates: np.ndarray, k: int, ctx: SelectionContext, rng: np.random.Generator
    ) -> np.ndarray:
        energy_j, carbon_g, _ = require_estimates(ctx, self.name)
        idx = np.flatnonzero(self.eligible(ctx))
        k = min(k, len(idx))
        if k == 0:
            return candidates[:0]
        g_per_kwh = carbon_g[idx] / np.maximum(energy_j[idx] / J_PER_KWH, 1e-300)
        pool_size = max(k, math.ceil(self.clean_share * len(idx)))
        clean = idx[np.lexsort((candidates[idx], g_per_kwh))[:pool_size]]
        clients = candidates[clean]
        utility = statistical_utility(clients, ctx, self.clip_percentile) / np.sqrt(
            1.0 + ctx.participation[clients]
        )
        best = np.lexsort((clients, -utility))[:k]
        return np.sort(clients[best])
