"""The privacy a run spends, round by round: an observer that composes each round into the
accountant, writes epsilon (at the run's delta) and the clip bound into the ledger, stops
the run before a round could pass the epsilon budget, and keeps a state that travels in
the snapshot so a resumed run counts on exactly."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from greenfl.core.errors import ConfigError
from greenfl.core.messages import local_steps
from greenfl.engine.observers import Observation, Observer, RoundView
from greenfl.privacy import (
    CentralAccountant,
    DPFedAvg,
    LocalAccountant,
    PrivacyBudget,
    dp_sgd_sample_rate,
)


@dataclass(frozen=True)
class PrivacySettings:
    """What the accountant needs of a DP run (greenfl.factories fills it from [privacy])."""

    mode: str  # central | local
    noise_multiplier: float
    clip_norm: float
    delta: float
    epsilon_budget: float | None = None
    sampling: str = "poisson"  # central: poisson | fixed


class PrivacyAccount(Observer):
    """Epsilon of a central (user-level) or local (sample-level, the largest over clients)
    DP run. ``max_cohort`` is the most clients a round may ask (over-selection and adapt
    arms included); ``worst_steps`` the most local steps a client may take (for local
    mode's budget check)."""

    def __init__(
        self,
        privacy: PrivacySettings,
        strategy: object,
        client_sizes: np.ndarray,
        max_cohort: int,
        worst_epochs: int,
        worst_batch: int,
        max_steps: int,
    ) -> None:
        if privacy.mode == "none":
            raise ValueError("PrivacyAccount needs privacy.mode = 'central' or 'local'")
        self.mode = privacy.mode
        self.delta = privacy.delta
        self.clip_norm = privacy.clip_norm
        self.budget = PrivacyBudget(privacy.epsilon_budget, privacy.delta)
        self.dp_strategy = strategy if isinstance(strategy, DPFedAvg) else None
        self.sizes = np.asarray(client_sizes, dtype=np.int64)
        self.max_cohort = max_cohort
        self.worst = (worst_epochs, worst_batch, max_steps)
        self.central = (
            CentralAccountant(privacy.noise_multiplier, privacy.sampling)
            if privacy.mode == "central"
            else None
        )
        self.local = LocalAccountant(privacy.noise_multiplier) if privacy.mode == "local" else None
        # The fewest clients available in any round so far: the next round's sampling rate
        # k/n is assumed no better than that when checking the budget.
        self.min_available = len(self.sizes)
        # Local mode: each client's worst round (rate, steps) is fixed by its size, so it is
        # worked out once; clients of equal size differ only in what they have spent, so
        # the budget check asks for those who have spent and one fresh client per size.
        epochs, batch, max_steps = self.worst
        steps = local_steps(self.sizes, epochs, batch, max_steps)
        self._worst_round = {
            int(c): (dp_sgd_sample_rate(batch, int(n)), int(s))
            for c, (n, s) in enumerate(zip(self.sizes, steps, strict=True))
        }
        _, first = np.unique(self.sizes, return_index=True)
        self._one_per_size = [int(c) for c in first]
        self._spent: set[int] = set()
        self._last_epsilon: float | None = None
        if self._next_exceeds():
            raise ConfigError(
                f"privacy.epsilon_budget = {privacy.epsilon_budget} is spent by the first "
                f"round already: raise it, or privacy.noise_multiplier"
            )

    def epsilon(self) -> float:
        acct = self.central if self.central is not None else self.local
        assert acct is not None
        return acct.epsilon(self.delta)

    # ---- the observer ----------------------------------------------------------------
    def observe(self, view: RoundView) -> Observation:
        """This round's epsilon and clip bound, and a stop when the next round could take
        epsilon past the budget."""
        columns = self.measure(view)
        eps = columns["epsilon"]
        stop = None
        if self._next_exceeds():
            stop = (
                f"privacy_budget_spent: the next round could take epsilon past "
                f"{self.budget.limit:g} (spent {eps:.4g} at delta {self.delta:g})"
            )
        metrics = {"epsilon": eps if eps is not None and math.isfinite(eps) else None}
        return Observation(columns=columns, metrics=metrics, stop=stop)

    def measure(self, facts: RoundView) -> dict[str, float | None]:
        if self.central is not None:
            if facts.num_available > 0 and facts.cohort_size > 0:
                self.central.compose_round(facts.cohort_size, facts.num_available)
            self.min_available = min(self.min_available, max(facts.num_available, 1))
            last = self.dp_strategy.last_round if self.dp_strategy is not None else None
            clip = last.clip_norm if last is not None else None
        else:
            assert self.local is not None
            ins = facts.instructions
            steps = ins.steps_of(facts.aggregated_ids.tolist(), facts.aggregated_samples)
            for cid, n, s in zip(
                facts.aggregated_ids, facts.aggregated_samples, steps, strict=True
            ):
                self.local.compose_client(int(cid), dp_sgd_sample_rate(ins.batch_size, n), int(s))
                self._spent.add(int(cid))
            clip = self.clip_norm
        self._last_epsilon = self.epsilon()
        return {"epsilon": self._last_epsilon, "dp_clip_norm": clip}

    # ---- the budget, as a callback -----------------------------------------------------
    def _next_exceeds(self) -> bool:
        if self.budget.unlimited:
            return False
        if self.central is not None:
            k = min(self.max_cohort, self.min_available)
            return self.budget.next_round_exceeds(self.central, k, self.min_available)
        assert self.local is not None
        asked = self._spent.union(self._one_per_size)
        planned = {c: self._worst_round[c] for c in asked}
        return self.budget.next_local_round_exceeds(self.local, planned)

    # ---- state ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        acct = self.central if self.central is not None else self.local
        assert acct is not None
        return {
            **{f"acct.{k}": v for k, v in acct.state_dict().items()},
            "min_available": torch.tensor(self.min_available, dtype=torch.int64),
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        acct = self.central if self.central is not None else self.local
        assert acct is not None
        acct.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("acct.")})
        self.min_available = int(state["min_available"])
        if self.local is not None:
            self._spent = {int(c) for c in state["acct.client_ids"].tolist()}
