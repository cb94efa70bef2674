"""Client selectors. Adding one is one module plus one line in SELECTORS."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from greenfl.selection.base import ClientSelector, SelectionContext
from greenfl.selection.cost import CarbonSelector, EnergySelector
from greenfl.selection.fairness import FairnessGuard, jain_index
from greenfl.selection.oort import OortSelector
from greenfl.selection.random import RandomSelector

if TYPE_CHECKING:
    from greenfl.config import SelectionConfig

SELECTORS: dict[str, Callable[[SelectionConfig], ClientSelector]] = {
    "random": lambda c: RandomSelector(),
    "oort": lambda c: OortSelector(
        c.preferred_duration_s,
        c.straggler_penalty,
        c.exploration,
        c.exploration_decay,
        c.min_exploration,
    ),
    "energy": lambda c: EnergySelector(),
    "carbon": lambda c: CarbonSelector(),
}


def make_selector(cfg: SelectionConfig) -> ClientSelector:
    selector = SELECTORS[cfg.name](cfg)
    if cfg.fairness != "none":
        selector = FairnessGuard(selector, cfg.fairness, cfg.fairness_window, cfg.jain_floor)
    return selector


def needs_estimates(selector: ClientSelector) -> bool:
    """Whether the engine must fill the context's per-candidate estimates (costly for a
    million candidates, so only selectors that use them ask)."""
    return bool(getattr(selector, "needs_estimates", False))


__all__ = [
    "SELECTORS",
    "CarbonSelector",
    "ClientSelector",
    "EnergySelector",
    "FairnessGuard",
    "OortSelector",
    "RandomSelector",
    "SelectionContext",
    "jain_index",
    "make_selector",
    "needs_estimates",
]
