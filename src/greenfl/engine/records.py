"""What a round leaves for observers, progress and the API: the RoundRecord."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from greenfl.models.evaluate import ClientAccuracy


@dataclass(frozen=True)
class RoundRecord:
    """What one round did, with running totals. Passed to observers and progress, and
    kept in ``RunResult.history``."""

    round: int
    accuracy: float
    loss: float
    selected: int
    completed: int
    sim_time_s: float
    wall_s: float
    energy_j: float
    carbon_g: float
    cum_energy_j: float
    cum_carbon_g: float
    client_accuracy: ClientAccuracy | None = None  # on clients' own test data, if evaluated
    # the observers' ledger columns (backdoor_success, epsilon, ...), by column name
    probes: dict[str, float | str | None] = field(default_factory=dict)
    # the metrics observers returned (loggers' values, callbacks' own), by name
    metrics: dict[str, Any] = field(default_factory=dict)
