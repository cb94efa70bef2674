"""When a run stops: its rounds, the target accuracy, the carbon budget. Observers may stop
it too (greenfl.engine.observers), after these are asked."""

from __future__ import annotations

from greenfl.engine.records import RoundRecord
from greenfl.engine.settings import StopRules
from greenfl.engine.state import LoopState


def stop_before(st: LoopState, rules: StopRules) -> str | None:
    """Why no further round starts, or None: all rounds done, or another round (costing
    about what the last one did) would exceed the carbon budget."""
    if st.round >= rules.rounds:
        return f"completed {rules.rounds} rounds"
    budget = rules.carbon_budget_g
    if budget is not None and st.round > 0:
        if st.cum_carbon_g + st.last_round_carbon_g > budget:
            return (
                f"carbon budget: another round (~{st.last_round_carbon_g:.3g} g) "
                f"would exceed {budget:.6g} gCO2e (spent {st.cum_carbon_g:.6g} g)"
            )
    return None


def stop_after(record: RoundRecord, rules: StopRules) -> str | None:
    """Why the run stops after this round, or None."""
    target, budget = rules.target_accuracy, rules.carbon_budget_g
    if target is not None and record.accuracy >= target:
        return f"reached target accuracy {target:g} in round {record.round}"
    if budget is not None and record.cum_carbon_g > budget:
        return f"carbon budget exceeded: {record.cum_carbon_g:.6g} g > {budget:.6g} gCO2e"
    return None
