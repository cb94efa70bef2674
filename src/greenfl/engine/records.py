"""What a round leaves for callbacks and progress: the RoundRecord, and the Callback shape."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


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


Callback = Callable[[RoundRecord, Any], tuple[bool, dict[str, Any]]]
"""A callback sees each finished round and the RoundLoop (typed loosely here, so that this
module needs no import of the loop) and returns (stop, metrics): pfl-research's shape."""
