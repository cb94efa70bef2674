"""The privacy budget: whether the next round may run without passing epsilon_budget.

The engine asks before a round, so a run stops at the last round that fits the budget
instead of overshooting it by one (epsilon only grows with rounds)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from greenfl.privacy.accountant import CentralAccountant, LocalAccountant


@dataclass(frozen=True)
class PrivacyBudget:
    """(epsilon_budget, delta): the guarantee a run must keep. No budget (None, as the
    config writes it; 0 or infinity alike) never stops a run."""

    epsilon_budget: float | None
    delta: float

    def __post_init__(self) -> None:
        if not 0.0 < self.delta < 1.0:
            raise ValueError(f"delta must lie in (0, 1), got {self.delta}")
        if self.epsilon_budget is not None and self.epsilon_budget < 0:
            raise ValueError(f"epsilon_budget must be >= 0, got {self.epsilon_budget}")

    @property
    def unlimited(self) -> bool:
        eps = self.epsilon_budget
        return eps is None or eps == 0 or math.isinf(eps)

    @property
    def limit(self) -> float:
        """The budget as a number: infinity when there is none."""
        return math.inf if self.unlimited else float(self.epsilon_budget or 0.0)

    def next_round_exceeds(
        self, accountant: CentralAccountant, cohort_size: int, population_size: int
    ) -> bool:
        """True when one more central round of ``cohort_size`` from ``population_size``
        available clients would take epsilon past the budget."""
        if self.unlimited:
            return False
        eps = accountant.epsilon_after_next(self.delta, cohort_size, population_size)
        return eps > self.limit

    def next_local_round_exceeds(
        self, accountant: LocalAccountant, planned: Mapping[int, tuple[float, int]]
    ) -> bool:
        """True when the planned clients (client -> (sample_rate, steps)) training one more
        round would take some client's sample-level epsilon past the budget."""
        if self.unlimited:
            return False
        return accountant.epsilon_after(self.delta, planned) > self.limit
