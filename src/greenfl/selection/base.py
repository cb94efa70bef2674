"""The ClientSelector protocol: who trains this round."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from greenfl.fleet.population import Population


@dataclass(frozen=True)
class UtilityInputs:
    """What statistical utility rests on, per client id (the run's arrays, not copies).

    ``loss``: each client's last reported mean training loss, nan where none yet (a claim,
    always clipped). ``samples``: each client's sample count. ``samples_claimed``: True
    where that count is the client's own claim (clipped to the ceiling of all counts);
    None: every count is known to the server (a simulation's partition)."""

    loss: np.ndarray
    samples: np.ndarray
    samples_claimed: np.ndarray | None = None


@dataclass
class SelectionContext:
    """What a selector may look at. Per-client arrays are indexed by client id and are
    shared with the engine, never copied per round."""

    round_idx: int
    now_s: float
    population: Population
    participation: np.ndarray  # rounds each client has completed
    last_selected: np.ndarray  # last round selected, -1 if never
    last_loss: np.ndarray  # last reported training loss, nan if never
    est_energy_j: np.ndarray | None = None  # per candidate, aligned with candidates
    est_carbon_g: np.ndarray | None = None
    est_duration_s: np.ndarray | None = None
    # What statistical utility rests on (greenfl.selection.utility); None: last_loss and
    # the population's sample counts, the counts taken as the server's own.
    utility: UtilityInputs | None = None
    extras: dict[str, object] = field(default_factory=dict)


@runtime_checkable
class ClientSelector(Protocol):
    """``needs_estimates = True`` asks the engine to fill the context's est_* arrays
    (vectorised over the candidates, costly for a million of them) before each call."""

    name: str
    needs_estimates: bool

    def select(
        self, candidates: np.ndarray, k: int, ctx: SelectionContext, rng: np.random.Generator
    ) -> np.ndarray:
        """Return up to k distinct client ids drawn from ``candidates``."""
        ...


@runtime_checkable
class LearningSelector(Protocol):
    """A selector that learns from each round's outcome (AutoFL-style): the planner tells
    it the round's accuracy before and after, and keeps its state in the snapshot."""

    def observe(self, acc_before: float, acc_after: float) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
