"""Client selectors. Adding one is one module plus one line in SELECTORS."""

from __future__ import annotations

from typing import Any

from greenfl.core.errors import ConfigError
from greenfl.selection.base import ClientSelector, SelectionContext
from greenfl.selection.cost import CarbonSelector, EnergySelector
from greenfl.selection.fairness import FairnessGuard, jain_index
from greenfl.selection.oort import OortSelector
from greenfl.selection.random import RandomSelector

SELECTORS: dict[str, type[ClientSelector]] = {
    "random": RandomSelector,
    "oort": OortSelector,
    "energy": EnergySelector,
    "carbon": CarbonSelector,
}


def make(name: str, **kwargs: Any) -> ClientSelector:
    """The selector registered as ``name``, built with its own keyword arguments."""
    if name not in SELECTORS:
        raise ConfigError(
            f"unknown selector {name!r}; choose one of {', '.join(sorted(SELECTORS))}"
        )
    return SELECTORS[name](**kwargs)


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
    "make",
    "needs_estimates",
]
