"""Time: the simulated clock, closing rounds under deadlines, carbon-aware waiting.

Scheduling policies (when a round starts) are registered in SCHEDULERS; a new one is one
module plus one line below (or an entry point in the ``greenfl.schedulers`` group).
``scheduling.name = "none"`` starts every round at once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from greenfl.core.registry import Registry

if TYPE_CHECKING:
    from greenfl.scheduling.carbon import CarbonAwareScheduler

SCHEDULERS: Registry[CarbonAwareScheduler] = Registry(
    "scheduler",
    "greenfl.schedulers",
    {"carbon": "greenfl.scheduling.carbon:CarbonAwareScheduler"},
)


def make(name: str, **params: Any) -> CarbonAwareScheduler:
    """The scheduler registered as ``name``, built with these parameters."""
    return SCHEDULERS.make(name, **params)


__all__ = ["SCHEDULERS", "make"]
