"""Carbon-aware scheduling in time: delay a round's start to a lower-carbon window.

Candidate starts are now, now + step, ... up to now + slack (never past it, nor past what
is left of a run's wait budget). For each, the expected carbon of the round started then
(the engine's forecast: the cohort's clients at their grids' forecast intensity and the
server's work at its grid's) plus the server's idle carbon while it waits (idle power x
wait x PUE at the server grid's forecast intensity) is compared; the cheapest start wins,
and ties go to the earliest, so a flat forecast never waits."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pydantic import Field, model_validator

from greenfl.core.registry import params

# Each round compares every candidate start: more than this many is a typo, not a plan (a
# year's slack at 5-minute steps is about 105,000), and each costs a forecast evaluation.
MAX_CANDIDATES = 200_000


@params
class CarbonSchedulerParams:
    slack_s: float = Field(3600.0, ge=0, le=1e9, description="longest wait before a round")
    # At least a second: carbon traces are hourly or 5-minutely, and a step of 1e-300 s
    # would ask for more candidate starts than memory holds.
    step_s: float = Field(
        900.0, ge=1, le=1e9, description="spacing of candidate start times (at least 1 s)"
    )
    max_total_wait_s: float | None = Field(
        None, ge=0, le=1e12, description="wait budget per run (none: unlimited)"
    )
    max_wait_share: float | None = Field(
        None,
        ge=0,
        le=1e3,
        description="waits may add at most this share to the run's simulated time "
        "(0.5: a run at most 1.5x as long as its rounds alone); none: no such bound",
    )

    @model_validator(mode="after")
    def _few_enough_candidates(self) -> CarbonSchedulerParams:
        if self.slack_s / self.step_s > MAX_CANDIDATES:
            raise ValueError(
                f"slack_s / step_s = {self.slack_s / self.step_s:.3g} candidate starts a "
                f"round; at most {MAX_CANDIDATES} (raise step_s or lower slack_s)"
            )
        return self


class CarbonAwareScheduler:
    name = "carbon"
    Params = CarbonSchedulerParams

    def __init__(self, params: CarbonSchedulerParams | None = None) -> None:
        p = params if params is not None else CarbonSchedulerParams()
        self.slack_s = p.slack_s
        self.step_s = p.step_s
        self.max_total_wait_s = p.max_total_wait_s
        self.max_wait_share = p.max_wait_share
        self.total_wait_s = 0.0

    def candidate_starts(self, now_s: float) -> np.ndarray:
        """Starts from now to now + the slack, within the wait budgets. ``now_s`` is the
        run's simulated time so far (the clock starts at 0): its part not spent waiting is
        the rounds', which ``max_wait_share`` measures waits against."""
        slack = self.slack_s
        if self.max_total_wait_s is not None:
            slack = min(slack, max(self.max_total_wait_s - self.total_wait_s, 0.0))
        if self.max_wait_share is not None:
            rounds_s = max(now_s - self.total_wait_s, 0.0)
            slack = min(slack, max(self.max_wait_share * rounds_s - self.total_wait_s, 0.0))
        offsets = np.arange(0.0, slack + 1e-9, self.step_s)
        if len(offsets) and slack - offsets[-1] > 1e-9:
            offsets = np.append(offsets, slack)  # the slack itself is a candidate
        return now_s + offsets

    def plan(
        self,
        now_s: float,
        round_carbon_g: Callable[[np.ndarray], np.ndarray],
        idle_carbon_g: Callable[[float, np.ndarray], np.ndarray],
    ) -> float:
        """Seconds to wait. ``round_carbon_g(starts)``: expected carbon of a round starting at
        each time; ``idle_carbon_g(now, starts)``: the server's idle carbon until each."""
        starts = self.candidate_starts(now_s)
        if len(starts) <= 1:
            return 0.0
        total = np.asarray(round_carbon_g(starts)) + np.asarray(idle_carbon_g(now_s, starts))
        wait_s = float(starts[int(np.argmin(total))] - now_s)  # argmin: first of equal minima
        self.total_wait_s += wait_s
        return wait_s

    def state_dict(self) -> dict[str, float]:
        return {"total_wait_s": self.total_wait_s}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.total_wait_s = float(state.get("total_wait_s", 0.0))
