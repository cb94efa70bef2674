"""Cost-aware selectors: the fewest joules (``energy``) or grams of CO2e (``carbon``) per unit
of statistical utility. The engine fills the per-candidate estimates (energy, carbon incl.
embodied share, duration) from the fleet and the carbon-intensity forecast over each
client's expected active interval."""

from __future__ import annotations

import numpy as np

from greenfl.core.registry import NoParams
from greenfl.selection.base import SelectionContext
from greenfl.selection.utility import lowest, require_estimates, statistical_utility


class EnergySelector:
    """Fewest expected joules (compute + communication) per unit of utility."""

    name = "energy"
    Params = NoParams
    needs_estimates = True

    def __init__(self, params: NoParams | None = None) -> None:
        return None

    def select(
        self, candidates: np.ndarray, k: int, ctx: SelectionContext, rng: np.random.Generator
    ) -> np.ndarray:
        energy_j, _, _ = require_estimates(ctx, self.name)
        return lowest(energy_j / statistical_utility(candidates, ctx), candidates, k)


class CarbonSelector:
    """Fewest expected gCO2e (operational at the forecast intensity of the client's grid over
    its active interval, plus its embodied share) per unit of utility."""

    name = "carbon"
    Params = NoParams
    needs_estimates = True

    def __init__(self, params: NoParams | None = None) -> None:
        return None

    def select(
        self, candidates: np.ndarray, k: int, ctx: SelectionContext, rng: np.random.Generator
    ) -> np.ndarray:
        _, carbon_g, _ = require_estimates(ctx, self.name)
        return lowest(carbon_g / statistical_utility(candidates, ctx), candidates, k)
