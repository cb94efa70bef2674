"""greenfl: federated learning that knows what its training costs the planet.

The public API is this module's ``__all__``. Importing greenfl is cheap: each name is
imported on first use (PEP 562), so ``import greenfl`` and ``greenfl --help`` never wait for
torch."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from greenfl._version import __version__
from greenfl.core.errors import (
    ConfigError,
    DataError,
    FleetError,
    GreenflError,
    TransportError,
    UpdateRejected,
)

if TYPE_CHECKING:
    from greenfl.api import RunResult, run
    from greenfl.config import RunConfig, build_config, load_config
    from greenfl.data.base import FederatedDataset
    from greenfl.engine.records import RoundRecord
    from greenfl.fleet.catalog import Fleet, load_fleet
    from greenfl.ledger.reader import Ledger, read_ledger

# name -> the module that defines it, imported when the name is first used
_LAZY = {
    "run": "greenfl.api",
    "RunResult": "greenfl.api",
    "RunConfig": "greenfl.config",
    "build_config": "greenfl.config",
    "load_config": "greenfl.config",
    "FederatedDataset": "greenfl.data.base",
    "RoundRecord": "greenfl.engine.records",
    "Fleet": "greenfl.fleet.catalog",
    "load_fleet": "greenfl.fleet.catalog",
    "Ledger": "greenfl.ledger.reader",
    "read_ledger": "greenfl.ledger.reader",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'greenfl' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # imported once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "ConfigError",
    "DataError",
    "FederatedDataset",
    "Fleet",
    "FleetError",
    "GreenflError",
    "Ledger",
    "RoundRecord",
    "RunConfig",
    "RunResult",
    "TransportError",
    "UpdateRejected",
    "__version__",
    "build_config",
    "load_config",
    "load_fleet",
    "read_ledger",
    "run",
]
