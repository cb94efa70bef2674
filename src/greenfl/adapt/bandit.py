"""FedGPO-style adaptation of round parameters: a bandit over arms of
(clients_per_round, local_epochs, batch_size), rewarded by accuracy gain per gCO2e.

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


@dataclass(frozen=True)
class Arm:
    clients_per_round: int
    local_epochs: int
    batch_size: int


def make_arms(clients: list[int], epochs: list[int], batches: list[int]) -> list[Arm]:
    return [Arm(*combo) for combo in itertools.product(clients, epochs, batches)]


def round_reward(acc_before: float, acc_after: float, carbon_g: float) -> float:
    """Share of the remaining error removed per gCO2e."""
    remaining = max(1.0 - acc_before, 1e-3)
    return (acc_after - acc_before) / remaining / max(carbon_g, 1e-12)


class Bandit:
    name = "bandit"

    def __init__(self, arms: list[Arm], discount: float = 0.95) -> None:
        if not arms:
            raise ValueError("a bandit needs at least one arm")
        self.arms = arms
        self.discount = discount
        self.counts = np.zeros(len(arms))  # discounted
        self.sums = np.zeros(len(arms))  # discounted, of scaled rewards
        self.sumsq = np.zeros(len(arms))
        self.pulls = np.zeros(len(arms), dtype=np.int64)  # plain, for reports
        self.scale = 0.0
        self.raw: list[tuple[int, float]] = []

    def choose(self, rng: np.random.Generator) -> int:
        untried = np.flatnonzero(self.pulls == 0)
        if len(untried):
            return int(untried[0])
        return self._choose(rng)

    def _choose(self, rng: np.random.Generator) -> int:
        raise NotImplementedError

    def update(self, arm: int, reward: float) -> None:
        self.raw.append((arm, reward))
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
        for arm, reward in raw:
            self.update(int(arm), float(reward))


class UCBBandit(Bandit):
    name = "ucb"

    def __init__(self, arms: list[Arm], exploration: float = 1.0, discount: float = 0.95) -> None:
        super().__init__(arms, discount)
        self.exploration = exploration

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

    def _choose(self, rng: np.random.Generator) -> int:
        draws = rng.normal(self.means(), 0.5 / np.sqrt(self.counts + 1.0))
        return int(np.argmax(draws))
