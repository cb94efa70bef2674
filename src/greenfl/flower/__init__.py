"""greenfl in a Flower app (``pip install 'greenfl[flower]'``): ``footprint_mod`` measures
each ClientApp call, ``GreenflStrategy`` wraps a ServerApp's strategy and writes a greenfl
ledger and summary.json (docs/flower.md)."""

from __future__ import annotations

try:
    import flwr  # noqa: F401
except ImportError as exc:  # one line naming the fix, not a deep traceback
    raise ImportError(
        "greenfl.flower needs Flower: pip install 'greenfl[flower]' (Python 3.11+)"
    ) from exc

from greenfl.flower.mod import footprint_mod
from greenfl.flower.strategy import GreenflStrategy

__all__ = ["GreenflStrategy", "footprint_mod"]
