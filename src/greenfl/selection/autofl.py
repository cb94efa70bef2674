"""AutoFL-style selection (Kim & Wu, "AutoFL: Enabling Heterogeneity-Aware Energy
Efficient Federated Learning", MICRO 2021), rewarded by accuracy gain per gCO2e.

AutoFL learns, from observed state, which devices to have train each round. Here it is a
tabular contextual bandit (Q-learning with no look-ahead, gamma = 0):

- state of a client: its context (device class, network, and its grid's forecast carbon
  intensity over its active interval, in terciles of the round's candidates): at most
  devices x networks x 3 states;
- action: pick k of the available clients; with probability epsilon (decaying per round
  to a floor) a context is picked at random, otherwise the best Q; contexts never tried
  are tried first (optimistic);
- reward: after the round, each participant's context is credited with the round's share
  of remaining error removed (greenfl.adapt.round_reward's numerator) per gCO2e of that
  client (its modelled estimate at selection), divided among the k participants;
  Q <- Q + lr (reward - Q).

The execution target of each device (CPU, GPU, NPU in the built-in catalog) is AutoFL's
other action; in greenfl it is ``adapt.target`` (``"carbon"``: each device's lowest-gCO2e
target, which a learner of per-target carbon in a modelled fleet converges to)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from greenfl.core.registry import params
from greenfl.selection.base import SelectionContext
from greenfl.selection.utility import exploration_share, require_estimates

_LEVELS = 3  # carbon-intensity terciles


@params
class AutoFLParams:
    exploration: float = Field(0.5, ge=0, le=1, description="initial share of picks that explore")
    exploration_decay: float = Field(
        0.95, gt=0, le=1, description="exploration share kept each round"
    )
    min_exploration: float = Field(0.05, ge=0, le=1, description="floor of the exploration share")
    learning_rate: float = Field(0.2, gt=0, le=1, description="step of the Q-value update")


class AutoFLSelector:
    name = "autofl"
    Params = AutoFLParams
    needs_estimates = True

    def __init__(self, params: AutoFLParams | None = None) -> None:
        p = params if params is not None else AutoFLParams()
        self.exploration = p.exploration
        self.decay = p.exploration_decay
        self.min_exploration = p.min_exploration
        self.lr = p.learning_rate
        self.q: dict[int, float] = {}  # context -> value
        self.tries: dict[int, int] = {}
        self._pending: list[tuple[int, float]] = []  # (context, est. gCO2e) of the last picks

    def contexts(self, candidates: np.ndarray, ctx: SelectionContext) -> np.ndarray:
        energy_j, carbon_g, _ = require_estimates(ctx, self.name)
        pop = ctx.population
        intensity = carbon_g / np.maximum(energy_j, 1e-300)
        if len(intensity) > 1:
            cuts = np.quantile(intensity, [1 / 3, 2 / 3])
            level = np.searchsorted(cuts, intensity, side="right")
        else:
            level = np.zeros(len(intensity), dtype=np.int64)
        n_net = len(pop.fleet.networks)
        return (
            pop.device[candidates].astype(np.int64) * n_net + pop.network[candidates]
        ) * _LEVELS + level

    def observe(self, acc_before: float, acc_after: float) -> None:
        """Credit the last picks with the round's gain per gram of each of them."""
        if not self._pending:
            return
        gain = (acc_after - acc_before) / max(1.0 - acc_before, 1e-3) / len(self._pending)
        for c, g in self._pending:
            reward = gain / max(g, 1e-12)
            q = self.q.get(c, 0.0)
            self.q[c] = q + self.lr * (reward - q) if c in self.tries else reward
            self.tries[c] = self.tries.get(c, 0) + 1
        self._pending = []

    def select(
        self, candidates: np.ndarray, k: int, ctx: SelectionContext, rng: np.random.Generator
    ) -> np.ndarray:
        k = min(k, len(candidates))
        if k == 0:
            return candidates[:0]
        _, carbon_g, _ = require_estimates(ctx, self.name)
        ctxs = self.contexts(candidates, ctx)
        eps = exploration_share(self.exploration, self.decay, self.min_exploration, ctx.round_idx)
        untried = np.array([c not in self.tries for c in ctxs.tolist()])
        value = np.array([self.q.get(c, 0.0) for c in ctxs.tolist()])
        # Untried contexts first, then by Q (ties at random); each of the k picks explores
        # (a random remaining candidate) with probability epsilon.
        score = np.where(untried, np.inf, value)
        by_value = np.lexsort((rng.random(len(candidates)), -score))
        n_explore = int(rng.binomial(k, eps))
        exploit = by_value[: k - n_explore]
        rest = np.setdiff1d(np.arange(len(candidates)), exploit)
        picked = np.concatenate([exploit, rng.choice(rest, n_explore, replace=False)])
        self._pending = list(zip(ctxs[picked].tolist(), carbon_g[picked].tolist(), strict=True))
        return np.sort(candidates[picked])

    def state_dict(self) -> dict[str, Any]:
        return {
            "q": {str(c): v for c, v in self.q.items()},
            "tries": {str(c): n for c, n in self.tries.items()},
            "pending": [[c, g] for c, g in self._pending],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.q = {int(c): float(v) for c, v in state.get("q", {}).items()}
        self.tries = {int(c): int(n) for c, n in state.get("tries", {}).items()}
        self._pending = [(int(c), float(g)) for c, g in state.get("pending", [])]
