"""Cost-aware selectors: the fewest joules (``energy``) or grams of CO2e (``carbon``) per unit
of statistical utility. The engine fills the per-candidate estimates (energy, carbon incl.
embodied share, duration) from the fleet and the carbon-intensity forecast over each
client's expected active interval.

The carbon selector takes a participation constraint, ``reserved_share``: a share of each
cohort's slots goes to the least-participating available clients, the cheapest of them per
unit of utility. Left alone, carbon per unit of utility keeps picking the same few large
clients on clean grids; under non-IID data (a Dirichlet partition) the labels the others
hold are then seldom trained on, and the final model's accuracy on those clients' own data
(the worst decile) falls behind random selection's. Reserving slots bounds that bias from
below: over r rounds at least about ``reserved_share x k x r`` picks go to clients in the
lowest participation tier, so the number of distinct clients grows with the rounds, while
the order inside a tier (carbon per utility) buys that coverage at the least carbon. The
rest of the cohort stays carbon-greedy, so the share trades carbon for coverage along one
axis, from 0 (pure carbon per utility, the default) to 1 (every slot to the least
participating: round-robin in cost order)."""

from __future__ import annotations

import math

import numpy as np
from pydantic import Field

from greenfl.core.registry import params
from greenfl.selection.base import SelectionContext
from greenfl.selection.utility import (
    clip_percentile_field,
    lowest,
    require_estimates,
    statistical_utility,
)


@params
class EnergyParams:
    clip_percentile: float = clip_percentile_field()


class EnergySelector:
    """Fewest expected joules (compute + communication) per unit of utility."""

    name = "energy"
    Params = EnergyParams
    needs_estimates = True

    def __init__(self, params: EnergyParams | None = None) -> None:
        p = params if params is not None else EnergyParams()
        self.clip_percentile = p.clip_percentile

    def select(
        self, candidates: np.ndarray, k: int, ctx: SelectionContext, rng: np.random.Generator
    ) -> np.ndarray:
        energy_j, _, _ = require_estimates(ctx, self.name)
        utility = statistical_utility(candidates, ctx, self.clip_percentile)
        return lowest(energy_j / utility, candidates, k)


# Slack when flooring share x k x rounds: (0.7 x 3) x 10 is 20.999999999999996 in binary,
# which would floor to 20 and move a slot by a round; a product within this of an integer
# counts as that integer.
_SLOT_SLACK = 1e-9


def reserved_slots(reserved_share: float, k: int, round_idx: int) -> int:
    """Slots of round ``round_idx`` (from 1) kept for the least-participating clients: those
    that bring the total over rounds 1..round_idx to floor(reserved_share x k x round_idx).
    A share that is not a whole number of slots (0.2 of 3) is spread over the rounds
    (0, 1, 0, 1, 1, ...) instead of rounding to the same count every round, which would
    make only multiples of 1/k reachable. Stateless: a resumed run reserves as an unbroken
    one. At most ceil(reserved_share x k) <= k."""
    if reserved_share <= 0 or k <= 0:
        return 0
    per_round = reserved_share * k
    before = math.floor(per_round * (round_idx - 1) + _SLOT_SLACK)
    upto = math.floor(per_round * round_idx + _SLOT_SLACK)
    return min(max(upto - before, 0), k)


@params
class CarbonParams:
    reserved_share: float = Field(
        0.0,
        ge=0,
        le=1,
        description="share of each cohort's slots kept for the least-participating available "
        "clients, cheapest per unit of utility first (0: none, pure carbon per utility)",
    )
    clip_percentile: float = clip_percentile_field()


class CarbonSelector:
    """Fewest expected gCO2e (operational at the forecast intensity of the client's grid over
    its active interval, plus its embodied share) per unit of utility; with
    ``reserved_share``, part of each cohort goes to the least-participating clients (the
    module docstring says why)."""

    name = "carbon"
    Params = CarbonParams
    needs_estimates = True

    def __init__(self, params: CarbonParams | None = None) -> None:
        p = params if params is not None else CarbonParams()
        self.reserved_share = p.reserved_share
        self.clip_percentile = p.clip_percentile

    def select(
        self, candidates: np.ndarray, k: int, ctx: SelectionContext, rng: np.random.Generator
    ) -> np.ndarray:
        _, carbon_g, _ = require_estimates(ctx, self.name)
        g_per_utility = carbon_g / statistical_utility(candidates, ctx, self.clip_percentile)
        k = min(k, len(candidates))
        n_reserved = reserved_slots(self.reserved_share, k, ctx.round_idx)
        if n_reserved == 0:
            return lowest(g_per_utility, candidates, k)
        reserved = least_participating(candidates, g_per_utility, ctx)[:n_reserved]
        rest = np.ones(len(candidates), dtype=bool)
        rest[reserved] = False
        greedy = lowest(g_per_utility[rest], candidates[rest], k - n_reserved)
        return np.sort(np.concatenate([candidates[reserved], greedy]))


def least_participating(
    candidates: np.ndarray, g_per_utility: np.ndarray, ctx: SelectionContext
) -> np.ndarray:
    """Positions in ``candidates``, least-participating first: fewest aggregated rounds,
    then picked least recently (never picked first), then fewest gCO2e per unit of utility,
    then client id. Recency before cost keeps a client whose updates are not aggregated
    (it drops, or straggles past the deadline) from holding the reserved slot round after
    round at zero participation; among clients never picked, cost alone decides."""
    return np.lexsort(
        (
            candidates,
            g_per_utility,
            ctx.last_selected[candidates],
            ctx.participation[candidates],
        )
    )
