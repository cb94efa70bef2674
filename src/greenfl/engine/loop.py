"""The round loop: a run's parts (handed over, never built here) and its live state, stepped
round by round through ``ROUND_STEPS`` (greenfl.engine.steps) until a stop condition."""

from __future__ import annotations

import json
import time
from functools import partial
from typing import Any

from greenfl.accounting.curves import (
    GROUPS_KEY,
    INTENSITY_KEY,
    curve_window_s,
    intensity_record,
    population_groups,
    used_regions,
)
from greenfl.clients.transport import ClientTransport
from greenfl.core.params import get_flat, set_flat
from greenfl.engine.fairness import write_fairness
from greenfl.engine.outcome import run_summary
from greenfl.engine.parts import Live, RunParts
from greenfl.engine.records import RoundRecord
from greenfl.engine.round import RoundContext
from greenfl.engine.state import LoopState, restore_state, state_bytes
from greenfl.engine.steps import ROUND_STEPS
from greenfl.engine.stopping import stop_after, stop_before
from greenfl.fleet.population import Population
from greenfl.ledger.writer import LedgerWriter
from greenfl.models.evaluate import evaluate
from greenfl.selection.base import LearningSelector


class PolicyState:
    """The state of the policies that learn or budget as the run goes (the adaptive round
    parameters, the carbon-aware wait, a learning selector), as one entry of the
    snapshot."""

    def __init__(self, parts: RunParts) -> None:
        self.parts = parts

    def state_dict(self) -> dict[str, Any]:
        p = self.parts
        learner = p.selector if isinstance(p.selector, LearningSelector) else None
        return {
            "adapter": p.round_params.state_dict(),
            "waiting": p.waiting.state_dict() if p.waiting is not None else {},
            "selector": learner.state_dict() if learner is not None else {},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        p = self.parts
        p.round_params.load_state_dict(state.get("adapter", {}))
        if p.waiting is not None:
            p.waiting.load_state_dict(state.get("waiting", {}))
        if isinstance(p.selector, LearningSelector):
            p.selector.load_state_dict(state.get("selector", {}))


class RoundLoop:
    """One federated run. Build it with ``greenfl.factories.build_loop`` (or hand it the
    parts yourself); step it with ``run_round`` or ``run``."""

    def __init__(self, parts: RunParts) -> None:
        self.parts = parts
        self.live = Live.start(parts, get_flat(parts.model))
        self.policies = PolicyState(parts)
        self._state_of: int | None = 0
        self._observer_stop: str | None = None
        self.stop_reason: str | None = None
        self.wall_start = time.perf_counter()

    # What callers reach for most, by name.
    @property
    def state(self) -> LoopState:
        return self.live.state

    @property
    def history(self) -> list[RoundRecord]:
        return self.live.history

    @property
    def ledger(self) -> LedgerWriter:
        return self.parts.ledger

    @property
    def transport(self) -> ClientTransport:
        return self.parts.transport

    @property
    def population(self) -> Population:
        return self.parts.population

    # ---- one round --------------------------------------------------------------------
    def run_round(self) -> RoundRecord:
        """One round, through the named steps; then its ledger row (in one transaction with
        the state's snapshot) and its record."""
        ctx = RoundContext(round_idx=self.live.state.round + 1, wall0=time.perf_counter())
        self._state_of = None  # the state is changing: no snapshot until the round is done
        self._steps(ctx)
        self._state_of = ctx.round_idx
        if self.parts.settings.accounting:
            assert ctx.account is not None
            snapshot = partial(self._snapshot_of, ctx.round_idx) if self._checkpoint else None
            self.parts.ledger.write_round(ctx.ledger_row(), ctx.account.rows, snapshot)
        assert ctx.record is not None and ctx.observed is not None
        self._observer_stop = ctx.observed.stop
        for obs in self.parts.observers:  # the round is recorded: progress may show it
            obs.on_round_end(ctx.record)
        return ctx.record

    def _steps(self, ctx: RoundContext) -> None:
        """The round's named steps (``ROUND_STEPS``), from the state's simulated time."""
        self.live.clock.now_s = self.live.state.now_s
        for step in ROUND_STEPS:
            step(self.parts, self.live, ctx)

    @property
    def _checkpoint(self) -> bool:
        return self.parts.settings.checkpoint and self.parts.ledger.path is not None

    # ---- the run ----------------------------------------------------------------------
    def should_stop_before(self) -> str | None:
        return stop_before(self.live.state, self.parts.settings.stop)

    def should_stop_after(self, record: RoundRecord) -> str | None:
        reason = stop_after(record, self.parts.settings.stop)
        return reason if reason is not None else self._observer_stop

    def run(self) -> str:
        """Run rounds until a stop condition; return the reason."""
        p, live = self.parts, self.live
        if live.state.round == 0 and "initial_accuracy" not in p.ledger.meta():
            # The untrained model's accuracy: the baseline of "accuracy points per kWh".
            acc, _ = evaluate(p.model, live.state.global_params, live.test_data)
            p.ledger.set_meta("initial_accuracy", repr(acc))
        while True:
            reason = self.should_stop_before()
            if reason:
                break
            record = self.run_round()
            reason = self.should_stop_after(record)
            if reason:
                break
        self.stop_reason = reason
        p.ledger.hand_over()  # the writer commits the last rounds while fairness is computed
        self.write_fairness()
        self.write_world()
        return reason

    def write_fairness(self) -> dict[str, str]:
        """Jain's index and the least-represented region's accuracy, into the ledger meta."""
        p, st = self.parts, self.live.state
        return write_fairness(
            p.ledger, p.population, st.participation, p.dataset, p.model, st.global_params
        )

    def write_world(self) -> None:
        """The intensity curves the accounting used and the clients per region and device,
        into the ledger meta, for the report to read back."""
        p = self.parts
        span_s = curve_window_s(self.live.state.now_s)
        regions = used_regions(p.population)
        curves = intensity_record(
            p.fleet, p.sources, p.grid, self.live.clock.start_utc, regions, span_s
        )
        p.ledger.set_meta(INTENSITY_KEY, json.dumps(curves))
        p.ledger.set_meta(GROUPS_KEY, json.dumps(population_groups(p.population)))

    def summary(self) -> dict[str, Any]:
        wall_s = time.perf_counter() - self.wall_start
        p = self.parts
        took_part = int((self.live.state.participation > 0).sum())
        return run_summary(
            p.summary, p.settings.accounting, self.live.history, p.ledger.conn, wall_s, took_part
        )

    # ---- persistence ------------------------------------------------------------------
    def snapshot(self) -> dict[str, bytes]:
        """The state after the current round, to persist with that round's ledger rows."""
        p, live = self.parts, self.live
        blob = state_bytes(live.state, live.rngs, p.strategy, self.policies, p.observers)
        return {"loop": blob}

    def _snapshot_of(self, round_idx: int) -> dict[str, bytes] | None:
        """The snapshot after ``round_idx`` if the state still is that (the ledger asks when
        it hands the round over, which may be after the next round has begun)."""
        return self.snapshot() if self._state_of == round_idx else None

    def restore(self, blob: bytes) -> None:
        p, live = self.parts, self.live
        restore_state(live.state, blob, live.rngs, p.strategy, self.policies, p.observers)
        set_flat(p.model, live.state.global_params)
