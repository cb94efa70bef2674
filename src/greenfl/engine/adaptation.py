"""A round's parameters: the configured ones, or each round's pick of an adaptive policy (a
bandit over clients per round, local epochs, batch size and, with sub-models, the widest
width), which then learns from what the round gained per gram."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from greenfl.adapt.bandit import Bandit, round_gain
from greenfl.engine.settings import RoundRules


@dataclass(frozen=True)
class RoundPlan:
    clients_per_round: int
    local_epochs: int
    batch_size: int
    arm: int | None  # the adaptive policy's arm, None without one
    # the widest sub-model width of the round (an arm's; 1.0: no cap, docs/submodels.md)
    width_cap: float = 1.0


class RoundParams:
    def __init__(self, rules: RoundRules, adapter: Bandit | None = None) -> None:
        self.rules = rules
        self.adapter = adapter

    def plan(self, rng: np.random.Generator) -> RoundPlan:
        r = self.rules
        if self.adapter is None:
            return RoundPlan(r.clients_per_round, r.local_epochs, r.batch_size, None)
        arm = self.adapter.choose(rng)
        a = self.adapter.arms[arm]
        return RoundPlan(a.clients_per_round, a.local_epochs, a.batch_size, arm, a.width)

    def observe(
        self, plan: RoundPlan, acc_before: float, acc_after: float, carbon_g: float
    ) -> None:
        if self.adapter is not None and plan.arm is not None:
            self.adapter.update(plan.arm, round_gain(acc_before, acc_after), carbon_g)

    def state_dict(self) -> dict[str, Any]:
        return self.adapter.state_dict() if self.adapter is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.adapter is not None:
            self.adapter.load_state_dict(state)
