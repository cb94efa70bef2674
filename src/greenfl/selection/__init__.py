"""Client selectors. Adding one is one module plus one line in SELECTORS."""

from __future__ import annotations

from typing import Any

from greenfl.core.errors import ConfigError
from greenfl.core.registry import make_from
from greenfl.selection.autofl import AutoFLSelector
from greenfl.selection.base import ClientSelector, LearningSelector, SelectionContext
from greenfl.selection.cost import CarbonSelector, EnergySelector
from greenfl.selection.fairness import FairnessGuard, jain_index
from greenfl.selection.fedzero import FedZeroSelector
from greenfl.selection.oort import OortSelector
from greenfl.selection.random import RandomSelector

SELECTORS: dict[str, type[ClientSelector]] = {
    "random": RandomSelector,
    "oort": OortSelector,
    "energy": EnergySelector,
    "carbon": CarbonSelector,
    "fedzero": FedZeroSelector,
    "autofl": AutoFLSelector,
}


def make(name: str, **kwargs: Any) -> ClientSelector:
    """The selector registered as ``name``, built with its own keyword arguments."""
    chosen = make_from("selector", SELECTORS, name, **kwargs)
    if not isinstance(chosen, ClientSelector):
        raise ConfigError(
            f"selector {name!r} does not implement ClientSelector "
            "(it needs name, needs_estimates and select)"
        )
    return chosen


__all__ = [
    "SELECTORS",
    "AutoFLSelector",
    "CarbonSelector",
    "ClientSelector",
    "EnergySelector",
    "FairnessGuard",
    "FedZeroSelector",
    "LearningSelector",
    "OortSelector",
    "RandomSelector",
    "SelectionContext",
    "jain_index",
    "make",
]
