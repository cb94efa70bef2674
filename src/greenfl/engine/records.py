"""What a round leaves for callbacks and progress: the RoundRecord, and the Callback shape."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from greenfl.models.evaluate import ClientAccuracy


@dataclass(frozen=True)
class RoundRecord:
    """What one round did, with running totals. Passed to callbacks and progress."""

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
    # the round probes' columns (backdoor_success, epsilon, ...), by ledger column name
    probes: dict[str, float | None] = field(default_factory=dict)


class ServerCost(NamedTuple):
    """The server's share of a round: its active seconds, the intensity over them, and
    its energy and carbon (active plus the idle wait before the round)."""

    server_s: float
    ci_g_per_kwh: float
    energy_j: float
    carbon_g: float
    end_s: float
    idle_j: float = 0.0  # of energy_j: standby (dedicated server) before and during it


Callback = Callable[[RoundRecord, Any], tuple[bool, dict[str, Any]]]
"""A callback sees each finished round and the RoundLoop (typed loosely here, so that this
module needs no import of the loop) and returns (stop, metrics): pfl-research's shape."""
