"""Client selectors, by registry name. A new one is one module plus one line below (or an
entry point in the ``greenfl.selectors`` group of an installed package); its type declares
``Params`` and implements ``greenfl.selection.base.ClientSelector``. The fairness guard
(``greenfl.selection.fairness.FairnessGuard``) wraps any of them.

Importing this package imports no selector: the classes live in their modules."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from greenfl.core.errors import ConfigError
from greenfl.core.registry import Registry

if TYPE_CHECKING:
    from greenfl.selection.base import ClientSelector

SELECTORS: Registry[ClientSelector] = Registry(
    "selector",
    "greenfl.selectors",
    {
        "random": "greenfl.selection.random:RandomSelector",
        "oort": "greenfl.selection.oort:OortSelector",
        "energy": "greenfl.selection.cost:EnergySelector",
        "carbon": "greenfl.selection.cost:CarbonSelector",
        "fedzero": "greenfl.selection.fedzero:FedZeroSelector",
        "autofl": "greenfl.selection.autofl:AutoFLSelector",
    },
)


def check_selector(name: str, chosen: object) -> None:
    """A ConfigError unless ``chosen`` implements the ClientSelector protocol."""
    from greenfl.selection.base import ClientSelector

    if not isinstance(chosen, ClientSelector):
        raise ConfigError(
            f"selector {name!r} does not implement ClientSelector "
            "(it needs name, needs_estimates and select)"
        )


def make(name: str, **params: Any) -> ClientSelector:
    """The selector registered as ``name``, built with these parameters (the others keep
    their defaults)."""
    chosen = SELECTORS.make(name, **params)
    check_selector(name, chosen)
    return chosen


__all__ = ["SELECTORS", "check_selector", "make"]
