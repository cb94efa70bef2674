"""The round loop.

clock.now -> available clients -> selector -> strategy.configure -> transport.fit (real
training) -> footprint per client -> deadline / drop-outs -> strategy.aggregate -> server
footprint -> evaluate -> ledger (one transaction) -> callbacks -> clock advances.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from greenfl.accounting.cohort import account_cohort, unaccounted
from greenfl.accounting.entries import EntryTable
from greenfl.accounting.sources import intensity_sources
from greenfl.clients.transport import ClientTransport
from greenfl.config import RunConfig
from greenfl.core.messages import ClientUpdate, FitInstructions
from greenfl.core.params import get_flat, set_flat
from greenfl.data.base import FederatedDataset
from greenfl.engine.fairness import fairness_report
from greenfl.engine.planning import RoundPlanner, idle_server
from greenfl.engine.records import Callback, RoundRecord
from greenfl.engine.snapshot import (  # noqa: F401 - _TensorBox: earlier snapshots name it here
    _TensorBox,
    array_part,
    compact,
    read_snapshot,
    small_state,
)
from greenfl.engine.snapshot import dumps as snapshot_bytes
from greenfl.fleet.catalog import Fleet
from greenfl.fleet.population import Population, available
from greenfl.footprint.measurement import Meter
from greenfl.footprint.model import operational_carbon_g, server_energy_j
from greenfl.ledger.summary import summarize, unaccounted_summary
from greenfl.ledger.writer import LedgerWriter
from greenfl.models.evaluate import evaluate
from greenfl.scheduling.clock import SimClock
from greenfl.selection.base import ClientSelector, SelectionContext
from greenfl.strategy.base import Strategy


@dataclass
class LoopState:
    """Everything needed to continue a run from the last completed round."""

    round: int
    global_params: torch.Tensor
    now_s: float
    participation: np.ndarray
    last_selected: np.ndarray
    last_loss: np.ndarray
    rng_states: dict[str, Any]
    cum_energy_j: float = 0.0
    cum_carbon_g: float = 0.0
    last_round_carbon_g: float = 0.0
    best_accuracy: float = field(default=-math.inf)


class RoundLoop:
    """One federated run's moving parts, wired together. Build it with
    ``greenfl.engine.build_loop``; step it with ``run_round`` or ``run``."""

    def __init__(
        self,
        cfg: RunConfig,
        model: nn.Module,
        dataset: FederatedDataset,
        fleet: Fleet,
        population: Population,
        strategy: Strategy,
        selector: ClientSelector,
        transport: ClientTransport,
        ledger: LedgerWriter,
        meter: Meter,
        callbacks: Sequence[Callback] = (),
        checkpoint: bool = True,
    ) -> None:
        self.cfg = cfg
        self.model = model
        self.dataset = dataset
        self.fleet = fleet
        self.population = population
        self.strategy = strategy
        self.selector = selector
        self.transport = transport
        self.ledger = ledger
        self.meter = meter
        self.callbacks = list(callbacks)
        self.checkpoint = checkpoint and ledger.path is not None
        self.clock = SimClock(cfg.fleet.start_time)
        self.entries = EntryTable.build(fleet)
        self.sources = intensity_sources(fleet, cfg.fleet, self.clock)
        self.server_region = fleet.region_index(fleet.server.region)
        self.test_data = dataset.test_data()
        n = population.size
        self.state = LoopState(
            round=0,
            global_params=get_flat(model),
            now_s=0.0,
            participation=np.zeros(n, dtype=np.int32),
            last_selected=np.full(n, -1, dtype=np.int32),
            last_loss=np.full(n, np.nan, dtype=np.float32),
            rng_states={},
        )
        self.rngs = {
            name: np.random.default_rng([cfg.seed, stream])
            for stream, name in enumerate(
                ("selection", "availability", "dropout", "adapt"), start=1
            )
        }
        self.planner = RoundPlanner(
            cfg, model, dataset, fleet, population, self.entries, self.sources, selector, self.clock
        )
        self.history: list[RoundRecord] = []
        self._state_of: int | None = 0
        self.stop_reason: str | None = None
        self.wall_start = time.perf_counter()

    # ---- one round ------------------------------------------------------------------
    def base_instructions(self) -> FitInstructions:
        t = self.cfg.train
        return FitInstructions(t.local_epochs, t.batch_size, t.lr, t.momentum)

    def run_round(self) -> RoundRecord:
        st = self.state
        cfg = self.cfg
        round_idx = st.round + 1
        self._state_of = None  # the state is changing: no snapshot until the round is done
        wall0 = time.perf_counter()
        self.clock.now_s = st.now_s
        plan = self.planner.plan(self.rngs["adapt"])
        # Waiting for a lower-carbon window happens before anyone is picked: who is
        # available depends on the hour. The server idles meanwhile, and that counts.
        wait_s = self.planner.wait_s(st.now_s, plan.clients_per_round, plan.local_epochs)
        idle_j, idle_g = idle_server(self.fleet, self.sources[self.server_region], st.now_s, wait_s)
        self.clock.advance(wait_s)
        round_start_s = self.clock.now_s
        k = plan.clients_per_round
        k_ask = min(self.population.size, math.ceil(k * (1 + cfg.fleet.over_selection)))
        candidates = available(
            self.population, self.clock.now_utc, cfg.fleet.availability, self.rngs["availability"]
        )
        connected = self.transport.available_clients()
        if connected is not None:
            # A deployment selects only among the clients connected now (this may wait).
            candidates = np.intersect1d(candidates, connected)
        ctx = SelectionContext(
            round_idx=round_idx,
            now_s=round_start_s,
            population=self.population,
            participation=st.participation,
            last_selected=st.last_selected,
            last_loss=st.last_loss,
        )
        if self.planner.wants_estimates:
            est, _ = self.planner.estimate(candidates, round_start_s, plan.local_epochs)
            ctx.est_energy_j, ctx.est_carbon_g = est.energy_j, est.carbon_g
            ctx.est_duration_s = est.duration_s
        cohort = self.selector.select(candidates, k_ask, ctx, self.rngs["selection"])
        cohort = np.asarray(cohort, dtype=np.int64)
        cohort_rows = self.planner.rows(cohort, round_start_s, plan.local_epochs)
        base = self.base_instructions().with_(
            local_epochs=plan.local_epochs, batch_size=plan.batch_size
        )
        instructions = self.strategy.configure(round_idx, base)
        # A deployment may close the round once k updates are in (over-selection).
        self.transport.expect_updates(min(k, len(cohort)))
        reports = self.transport.fit(
            round_idx, list(map(int, cohort)), st.global_params, instructions
        )

        accounting = cfg.engine.accounting
        if accounting:
            account = account_cohort(
                round_idx,
                round_start_s,
                reports,
                self.population,
                self.planner.table,
                self.sources,
                min(k, len(reports)),
                cfg.fleet.deadline_s,
                cfg.fleet.dropout_prob,
                self.rngs["dropout"],
                rows=cohort_rows,
                cohort=cohort,
            )
            statuses = account.status
        else:
            # Without accounting there is no modelled time: no deadline, no drop-outs
            # (RunConfig refuses those settings), every completed report is aggregated.
            account = unaccounted()
            statuses = [r.status for r in reports]
        accepted = [r for r, s in zip(reports, statuses, strict=True) if s == "completed"]

        token = self.meter.begin()
        if accepted:
            updates = [ClientUpdate(r.client_id, r.delta, r.num_samples) for r in accepted]
            st.global_params = self.strategy.aggregate(st.global_params, updates)
        accuracy, loss = evaluate(self.model, st.global_params, self.test_data)
        measured = self.meter.end(token)

        srv = self.fleet.server
        server_s = measured.elapsed_s
        srv_start = round_start_s + account.close_s
        srv_ci = srv_j = srv_g = 0.0
        if accounting:
            srv_ci = float(self.sources.mean(self.server_region, srv_start, srv_start + server_s))
            srv_j = server_energy_j(server_s, srv.power_w, srv.pue, measured.energy_j)
            srv_g = float(operational_carbon_g(srv_j, srv_ci))
        end_s = srv_start + server_s
        self.planner.last_server_j = srv_j
        acc_before = self.history[-1].accuracy if self.history else self._initial_accuracy()
        srv_j, srv_g = srv_j + idle_j, srv_g + idle_g

        ids = np.array([r.client_id for r in accepted], dtype=np.int64)
        st.participation[ids] += 1
        st.last_selected[np.asarray(cohort, dtype=np.int64)] = round_idx
        st.last_loss[ids] = [r.loss for r in accepted]
        st.round = round_idx
        st.now_s = end_s
        st.best_accuracy = max(st.best_accuracy, accuracy)
        round_energy = account.energy_j + srv_j
        round_carbon = account.carbon_g + srv_g
        st.cum_energy_j += round_energy
        st.cum_carbon_g += round_carbon
        st.last_round_carbon_g = round_carbon
        self.planner.observe(plan, acc_before, accuracy, round_carbon)
        wall_s = time.perf_counter() - wall0
        self._state_of = round_idx
        if accounting:
            self.ledger.write_round(
                {
                    "round": round_idx,
                    "start_s": round_start_s,
                    "end_s": end_s,
                    "wait_s": wait_s,
                    "accuracy": accuracy,
                    "loss": loss,
                    "selected": len(reports),
                    "completed": len(accepted),
                    "server_s": server_s,
                    "server_energy_j": srv_j,
                    "server_idle_energy_j": idle_j,
                    "server_carbon_g": srv_g,
                    "server_ci_g_per_kwh": srv_ci,
                    "server_estimated": int(measured.estimated),
                    "wall_s": wall_s,
                },
                account.rows,
                partial(self._snapshot_of, round_idx) if self.checkpoint else None,
            )
        record = RoundRecord(
            round=round_idx,
            accuracy=accuracy,
            loss=loss,
            selected=len(reports),
            completed=len(accepted),
            sim_time_s=end_s,
            wall_s=wall_s,
            energy_j=round_energy,
            carbon_g=round_carbon,
            cum_energy_j=st.cum_energy_j,
            cum_carbon_g=st.cum_carbon_g,
        )
        self.history.append(record)
        return record

    def _initial_accuracy(self) -> float:
        stored = self.ledger.meta().get("initial_accuracy")
        if stored is not None:
            return float(stored)
        return evaluate(self.model, self.state.global_params, self.test_data)[0]

    def write_fairness(self) -> dict[str, str]:
        """Jain's index and the least-represented region's accuracy, into the ledger meta."""
        meta = fairness_report(
            self.population,
            self.state.participation,
            self.dataset,
            lambda data: evaluate(self.model, self.state.global_params, data),
        )
        for key, value in meta.items():
            self.ledger.set_meta(key, value)
        return meta

    # ---- the run ----------------------------------------------------------------------
    def should_stop_before(self) -> str | None:
        cfg = self.cfg
        if self.state.round >= cfg.train.rounds:
            return f"completed {cfg.train.rounds} rounds"
        budget = cfg.stop.carbon_budget_g
        if budget is not None and self.state.round > 0:
            projected = self.state.cum_carbon_g + self.state.last_round_carbon_g
            if projected > budget:
                return (
                    f"carbon budget: another round (~{self.state.last_round_carbon_g:.3g} g) "
                    f"would exceed {budget:.6g} gCO2e (spent {self.state.cum_carbon_g:.6g} g)"
                )
        return None

    def should_stop_after(self, record: RoundRecord) -> str | None:
        target = self.cfg.stop.target_accuracy
        if target is not None and record.accuracy >= target:
            return f"reached target accuracy {target:g} in round {record.round}"
        budget = self.cfg.stop.carbon_budget_g
        if budget is not None and record.cum_carbon_g > budget:
            return f"carbon budget exceeded: {record.cum_carbon_g:.6g} g > {budget:.6g} gCO2e"
        stop = None
        for cb in self.callbacks:
            want_stop, _metrics = cb(record, self)
            if want_stop and stop is None:
                stop = f"stopped by callback {getattr(cb, '__name__', type(cb).__name__)}"
        return stop

    def run(self, on_round: Callable[[RoundRecord], None] | None = None) -> str:
        """Run rounds until a stop condition; return the reason."""
        if self.state.round == 0 and "initial_accuracy" not in self.ledger.meta():
            # The untrained model's accuracy: the baseline of "accuracy points per kWh".
            acc, _ = evaluate(self.model, self.state.global_params, self.test_data)
            self.ledger.set_meta("initial_accuracy", repr(acc))
        while True:
            reason = self.should_stop_before()
            if reason:
                break
            record = self.run_round()
            if on_round is not None:
                on_round(record)
            reason = self.should_stop_after(record)
            if reason:
                break
        self.stop_reason = reason
        self.ledger.hand_over()  # the writer commits the last rounds while fairness is computed
        self.write_fairness()
        return reason

    def summary(self) -> dict[str, Any]:
        wall_s = time.perf_counter() - self.wall_start
        if not self.cfg.engine.accounting:
            return unaccounted_summary(self.history, self.cfg.stop.target_accuracy, wall_s)
        return summarize(self.ledger.conn, self.cfg.stop.target_accuracy, wall_s)

    # ---- persistence ------------------------------------------------------------------
    def snapshot(self) -> dict[str, bytes]:
        """The state after the current round, to persist with that round's ledger rows."""
        st = self.state
        return {
            "loop": snapshot_bytes(
                {
                    "round": st.round,
                    "global_params": array_part(st.global_params.detach().cpu().numpy()),
                    "now_s": st.now_s,
                    "population_size": len(st.participation),
                    "participation": compact(st.participation, 0),
                    "last_selected": compact(st.last_selected, -1),
                    "last_loss": compact(st.last_loss, np.nan),
                    "rngs": {k: r.bit_generator.state for k, r in self.rngs.items()},
                    "strategy": small_state(self.strategy.state_dict()),
                    "planner": small_state(self.planner.state_dict()),
                    "cum_energy_j": st.cum_energy_j,
                    "cum_carbon_g": st.cum_carbon_g,
                    "last_round_carbon_g": st.last_round_carbon_g,
                    "best_accuracy": st.best_accuracy,
                }
            )
        }

    def _snapshot_of(self, round_idx: int) -> dict[str, bytes] | None:
        """The snapshot after ``round_idx`` if the state still is that (the ledger asks when
        it hands the round over, which may be after the next round has begun)."""
        return self.snapshot() if self._state_of == round_idx else None

    def restore(self, blob: bytes) -> None:
        st = self.state
        snap = read_snapshot(blob, len(st.participation))
        st.round = int(snap["round"])
        st.global_params = snap["global_params"]
        st.now_s = float(snap["now_s"])
        st.participation = snap["participation"]
        st.last_selected = snap["last_selected"]
        st.last_loss = snap["last_loss"]
        for k, state in snap["rngs"].items():
            self.rngs[k].bit_generator.state = state
        self.strategy.load_state_dict(snap["strategy"])
        self.planner.load_state_dict(snap["planner"])
        st.cum_energy_j = float(snap["cum_energy_j"])
        st.cum_carbon_g = float(snap["cum_carbon_g"])
        st.last_round_carbon_g = float(snap["last_round_carbon_g"])
        st.best_accuracy = float(snap["best_accuracy"])
        set_flat(self.model, st.global_params)
