"""When a run stops: its rounds, the target accuracy, the carbon budget. Callbacks may stop
it too (the loop asks them after these)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from greenfl.engine.records import Callback, RoundRecord
from greenfl.engine.state import LoopState


def stop_before(st: LoopState, rounds: int, carbon_budget_g: float | None) -> str | None:
    """Why no further round starts, or None: all rounds done, or another round (costing
    about what the last one did) would exceed the carbon budget."""
    if st.round >= rounds:
        return f"completed {rounds} rounds"
    if carbon_budget_g is not None and st.round > 0:
        if st.cum_carbon_g + st.last_round_carbon_g > carbon_budget_g:
            return (
                f"carbon budget: another round (~{st.last_round_carbon_g:.3g} g) "
                f"would exceed {carbon_budget_g:.6g} gCO2e (spent {st.cum_carbon_g:.6g} g)"
            )
    return None


def stop_after(
    record: RoundRecord, target_accuracy: float | None, carbon_budget_g: float | None
) -> str | None:
    """Why the run stops after this round, or None."""
    if target_accuracy is not None and record.accuracy >= target_accuracy:
        return f"reached target accuracy {target_accuracy:g} in round {record.round}"
    if carbon_budget_g is not None and record.cum_carbon_g > carbon_budget_g:
        return f"carbon budget exceeded: {record.cum_carbon_g:.6g} g > {carbon_budget_g:.6g} gCO2e"
    return None


def callback_stop(callbacks: Sequence[Callback], record: RoundRecord, loop: Any) -> str | None:
    """The first callback that asks to stop, named; every callback is called (each may keep
    its own metrics)."""
    stop = None
    for cb in callbacks:
        want_stop, _metrics = cb(record, loop)
        if want_stop and stop is None:
            stop = f"stopped by callback {getattr(cb, '__name__', type(cb).__name__)}"
    return stop
