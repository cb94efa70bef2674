"""Partial work (``fleet.partial_work = "aggregate"``), as in FedProx (Li et al., MLSys
2020): a client the deadline would cut off is asked for the local steps it can finish in
time, and its update is aggregated, weighed by its samples and the share of the round's
steps it did. With ``"drop"`` it straggles and the work it did is wasted."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from greenfl.core.messages import ClientReport, ClientUpdate, FitInstructions
from greenfl.engine.costs import CostModel


@dataclass(frozen=True)
class PartialWork:
    caps: dict[int, int] = field(default_factory=dict)  # client id -> steps asked
    fraction: dict[int, float] = field(default_factory=dict)  # client id -> share of steps

    @property
    def ids(self) -> frozenset[int]:
        return frozenset(self.caps)

    def instruct(self, instructions: FitInstructions) -> FitInstructions:
        """The round's instructions with these clients' step caps."""
        return instructions.with_client_steps(self.caps) if self.caps else instructions


NO_PARTIAL_WORK = PartialWork()


def plan_partial_work(
    costs: CostModel,
    deadline_s: float,
    cohort: np.ndarray,
    rows: np.ndarray,
    instructions: FitInstructions,
) -> PartialWork:
    """The step caps of the cohort's clients that cannot do ``instructions``' work by the
    deadline, and what share of the round's steps each does."""
    caps = costs.partial_steps(
        cohort, rows, instructions.local_epochs, instructions.batch_size, deadline_s
    )
    if not caps:
        return NO_PARTIAL_WORK
    ids = np.fromiter(caps, dtype=np.int64, count=len(caps))
    full = instructions.steps(costs.population.num_samples[ids])
    fraction = {int(c): caps[int(c)] / int(f) for c, f in zip(ids, full, strict=True)}
    return PartialWork(caps, fraction)


def updates_of(accepted: Sequence[ClientReport], work: PartialWork) -> list[ClientUpdate]:
    """The aggregated reports as strategy inputs, partial work weighed by its share."""
    return [
        ClientUpdate(r.client_id, r.delta, r.num_samples, work.fraction.get(r.client_id, 1.0))
        for r in accepted
    ]
