"""FedGPO-style adaptation of round parameters: a bandit over arms of
(clients_per_round, local_epochs, batch_size, width), rewarded by accuracy gain per gCO2e.
``width`` is the widest sub-model width any client trains in the round (1.0: no cap; only
runs with sub-models have other values, docs/submodels.md).

The reward of a round is (acc - acc_before) / (1 - acc_before) / carbon_g: the share of the
remaining error removed per gram. Measuring the gain against what is left keeps late rounds,
where every arm gains little, from looking worse than early ones. Rewards are scaled by the
largest magnitude seen so far, and old observations are discounted (Garivier & Moulines'
discounted UCB), because what pays off changes as the model converges."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from pydantic import Field

from greenfl.core.registry import params


@dataclass(frozen=True)
class Arm:
    clients_per_round: int
    local_epochs: int
    batch_size: int
    width: float = 1.0


def make_arms(
    clients: list[int],
    epochs: list[int],
    batches: list[int],
    widths: list[float] | None = None,
) -> list[Arm]:
    return [Arm(*combo) for combo in itertools.product(clients, epochs, batches, widths or [1.0])]


def round_gain(acc_before: float, acc_after: float) -> float:
    """Share of the remaining error a round removed."""
    return (acc_after - acc_before) / max(1.0 - acc_before, 1e-3)


def round_reward(acc_before: float, acc_after: float, carbon_g: float) -> float:
    """Share of the remaining error removed per gCO2e."""
    return round_gain(acc_before, acc_after) / max(carbon_g, 1e-12)


@params
class ThompsonParams:
    discount: float = Field(
        0.95, gt=0, le=1, description="weight kept by past rounds each round (1: no discount)"
    )


@params
class UCBParams(ThompsonParams):
    exploration: float = Field(1.0, ge=0, le=1e6, description="confidence width")


@params
class PooledParams:
    prior_rounds: float = Field(
        5.0, gt=0, le=1e6, description="rounds' worth of weight on the mean gain of all rounds"
    )
    gain_sd: float = Field(
        0.25, gt=0, le=1e6, description="spread of one round's gain (share of error removed)"
    )


class Bandit:
    """A bandit over ``arms``; ``params`` its own parameters (``Params``)."""

    name = "bandit"
    Params: type = ThompsonParams

    def __init__(self, arms: list[Arm], params: ThompsonParams | None = None) -> None:
        if not arms:
            raise ValueError("a bandit needs at least one arm")
        self.arms = arms
        self.discount = (params if params is not None else ThompsonParams()).discount
        self.counts = np.zeros(len(arms))  # discounted
        self.sums = np.zeros(len(arms))  # discounted, of scaled rewards
        self.sumsq = np.zeros(len(arms))
        self.pulls = np.zeros(len(arms), dtype=np.int64)  # plain, for reports
        self.scale = 0.0
        self.raw: list[tuple[int, float, float]] = []  # (arm, gain, carbon_g) per round

    def choose(self, rng: np.random.Generator) -> int:
        untried = np.flatnonzero(self.pulls == 0)
        if len(untried):
            return int(untried[0])
        return self._choose(rng)

    def _choose(self, rng: np.random.Generator) -> int:
        raise NotImplementedError

    def update(self, arm: int, gain: float, carbon_g: float) -> None:
        """Record a round of ``arm``: the share of the remaining error it removed
        (``round_gain``) and the gCO2e it cost."""
        self.raw.append((arm, gain, carbon_g))
        reward = gain / max(carbon_g, 1e-12)
        self.scale = max(self.scale, abs(reward))
        self.counts *= self.discount
        self.sums *= self.discount
        self.sumsq *= self.discount
        # Sums stay in raw units; means() divides by the scale at use time (it is linear).
        self.counts[arm] += 1.0
        self.sums[arm] += reward
        self.sumsq[arm] += reward * reward
        self.pulls[arm] += 1

    def means(self) -> np.ndarray:
        scale = self.scale or 1.0
        return np.where(self.counts > 0, self.sums / np.maximum(self.counts, 1e-12), 0.0) / scale

    def state_dict(self) -> dict[str, object]:
        return {"raw": list(self.raw)}

    def load_state_dict(self, state: dict[str, object]) -> None:
        raw = state.get("raw", [])
        assert isinstance(raw, list)
        for entry in raw:
            # Snapshots from before gain and carbon were kept apart hold (arm, reward): the
            # same reward for ucb and thompson with a carbon of 1 g.
            arm, gain, carbon_g = entry if len(entry) == 3 else (*entry, 1.0)
            self.update(int(arm), float(gain), float(carbon_g))


class UCBBandit(Bandit):
    name = "ucb"
    Params = UCBParams

    def __init__(self, arms: list[Arm], params: UCBParams | None = None) -> None:
        p = params if params is not None else UCBParams()
        super().__init__(arms, p)
        self.exploration = p.exploration

    def _choose(self, rng: np.random.Generator) -> int:
        # Discounted UCB's padding sqrt(xi ln n / N) with xi = 1/2 (Garivier & Moulines, 2011),
        # on rewards scaled into [-1, 1].
        n = max(float(self.counts.sum()), 1.0)
        width = self.exploration * np.sqrt(0.5 * math.log(n) / np.maximum(self.counts, 1e-12))
        return int(np.argmax(self.means() + width))


class ThompsonBandit(Bandit):
    """Gaussian Thompson sampling on scaled rewards, with an observation noise of 0.5: the
    largest standard deviation a reward bounded in a unit interval can have."""

    name = "thompson"
    Params = ThompsonParams

    def _choose(self, rng: np.random.Generator) -> int:
        draws = rng.normal(self.means(), 0.5 / np.sqrt(self.counts + 1.0))
        return int(np.argmax(draws))


class PooledThompsonBandit(Bandit):
    """Thompson sampling on gain per round, divided by carbon per round.

    With a handful of rounds to target and noisy gains, trying every arm once (the other
    bandits' first rounds) spends most of a run exploring. This bandit shares what it learns
    instead:
    - Each arm's gain per round is a Gaussian posterior shrunk toward the mean gain of every
      round so far, as if ``prior_rounds`` rounds had gained that mean. An arm seen rarely
      is assumed to gain what rounds gain in general.
    - An arm's carbon per round is its observed mean. An untried arm's is optimistic: the
      tried arms' carbon scaled by clients per round only, as if more local epochs and other
      batch sizes cost nothing until seen.
    - Each round it draws every arm's gain and picks the largest draw per gram.

    So it starts on the cheapest cohorts and moves to a costlier arm only when that arm's
    gain is seen, or drawn, to pay for its carbon."""

    name = "pooled"
    Params = PooledParams

    def __init__(self, arms: list[Arm], params: PooledParams | None = None) -> None:
        p = params if params is not None else PooledParams()
        # every round counts alike: runs are short
        super().__init__(arms, ThompsonParams(discount=1.0))
        self.prior_rounds = p.prior_rounds
        self.gain_sd = p.gain_sd
        self.clients = np.array([a.clients_per_round for a in arms], dtype=float)
        self.gain_sum = np.zeros(len(arms))
        self.carbon_sum = np.zeros(len(arms))

    def update(self, arm: int, gain: float, carbon_g: float) -> None:
        super().update(arm, gain, carbon_g)
        self.gain_sum[arm] += gain
        self.carbon_sum[arm] += carbon_g

    def carbon_per_round_g(self) -> np.ndarray:
        """Each arm's expected gCO2e per round: observed, or optimistic where untried (by
        clients per round from the tried arms; before any round, clients per round)."""
        tried = self.pulls > 0
        if not tried.any():
            return self.clients.copy()
        observed = self.carbon_sum[tried] / self.pulls[tried]
        per_client = float(np.mean(observed / self.clients[tried]))
        out = self.clients * per_client
        out[tried] = observed
        return np.maximum(out, 1e-12)

    def choose(self, rng: np.random.Generator) -> int:
        n = self.pulls.astype(float)
        # Before any round there is no mean gain to shrink toward: a tenth of the error per
        # round stands in.
        pooled = float(self.gain_sum.sum() / n.sum()) if n.sum() else 0.1
        mean = (self.prior_rounds * pooled + self.gain_sum) / (self.prior_rounds + n)
        draws = rng.normal(mean, self.gain_sd / np.sqrt(self.prior_rounds + n))
        carbon_g = self.carbon_per_round_g()
        # A loss per gram would favour the costliest arm when every draw is negative; a
        # loss costs more the more the round costs.
        return int(np.argmax(np.where(draws > 0, draws / carbon_g, draws * carbon_g)))
