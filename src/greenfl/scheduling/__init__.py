"""Time: the simulated clock, closing rounds under deadlines, carbon-aware waiting.

Scheduling policies (when a round starts) are registered in SCHEDULERS; adding one is one
module plus one line there."""

from __future__ import annotations

from typing import Any

from greenfl.core.registry import make_from
from greenfl.scheduling.carbon import CarbonAwareScheduler
from greenfl.scheduling.clock import SimClock
from greenfl.scheduling.deadline import RoundClose, close_round

SCHEDULERS: dict[str, type[CarbonAwareScheduler]] = {
    "carbon": CarbonAwareScheduler,
}


def make(name: str, **kwargs: Any) -> CarbonAwareScheduler:
    """The scheduler registered as ``name``, built with its own keyword arguments."""
    return make_from("scheduler", SCHEDULERS, name, **kwargs)


__all__ = ["SCHEDULERS", "CarbonAwareScheduler", "RoundClose", "SimClock", "close_round", "make"]
