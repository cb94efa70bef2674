"""greenfl in a Flower app (``pip install 'greenfl[flower]'``): ``footprint_mod`` measures
each ClientApp call, ``GreenflStrategy`` wraps a ServerApp's strategy and writes a greenfl
ledger and summary.json (docs/flower.md).

Each name is imported when first asked for: a ClientApp that takes only the mod does not
load the strategy's side (the ledger, the fleet, the accounting) in every node."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from greenfl.core.errors import MissingExtraError

try:
    import flwr  # noqa: F401
except ImportError:  # one line naming the fix, not a deep traceback
    raise MissingExtraError(
        "greenfl.flower needs Flower: pip install 'greenfl[flower]' (Python 3.11+)"
    ) from None

if TYPE_CHECKING:
    from greenfl.flower.mod import footprint_mod
    from greenfl.flower.strategy import GreenflStrategy

__all__ = ["GreenflStrategy", "footprint_mod"]
_WHERE = {"GreenflStrategy": "greenfl.flower.strategy", "footprint_mod": "greenfl.flower.mod"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'greenfl.flower' has no attribute {name!r}")
