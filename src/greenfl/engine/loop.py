"""The round loop.

clock.now -> available clients -> selector -> strategy.configure -> transport.fit (real
training) -> footprint per client -> deadline / drop-outs -> strategy.aggregate -> server
footprint -> evaluate -> ledger (one transaction) -> callbacks -> clock advances.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np
from torch import nn

from greenfl.accounting.cohort import account_cohort, unaccounted
from greenfl.accounting.columns import CohortAccount
from greenfl.accounting.curves import (
    GROUPS_KEY,
    INTENSITY_KEY,
    curve_window_s,
    intensity_record,
    population_groups,
    used_regions,
)
from greenfl.accounting.entries import EntryTable
from greenfl.accounting.sources import GridChoice, intensity_sources
from greenfl.clients.transport import ClientTransport
from greenfl.config import RunConfig
from greenfl.core.messages import ClientReport, FitInstructions
from greenfl.core.params import get_flat, set_flat
from greenfl.data.base import FederatedDataset
from greenfl.engine.client_eval import ClientEvaluator, client_acc_columns
from greenfl.engine.fairness import write_fairness
from greenfl.engine.outcome import run_summary
from greenfl.engine.partial import PartialWork, plan_partial_work, updates_of
from greenfl.engine.planning import RoundPlan, RoundPlanner, idle_server
from greenfl.engine.probes import RoundProbe, measure_all, round_facts
from greenfl.engine.records import Callback, RoundRecord, ServerCost
from greenfl.engine.server_work import Evaluated, ServerWorkModel, server_cost
from greenfl.engine.state import LoopState, restore_state, state_bytes
from greenfl.engine.stopping import callback_stop, stop_after, stop_before
from greenfl.fleet.catalog import Fleet
from greenfl.fleet.population import Population, available
from greenfl.footprint.measurement import Measurement, Meter
from greenfl.ledger.schema import AGGREGATED
from greenfl.ledger.writer import LedgerWriter
from greenfl.models.evaluate import evaluate
from greenfl.scheduling.clock import SimClock
from greenfl.selection.base import ClientSelector, SelectionContext
from greenfl.strategy.base import Strategy


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
        server_work: ServerWorkModel | None = None,
        probes: Sequence[RoundProbe] = (),
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
        self.server_work = server_work  # None: the server's time is measured on this host
        self.callbacks = list(callbacks)
        self.probes = list(probes)  # extra per-round measures of the model (ledger columns)
        self.checkpoint = checkpoint and ledger.path is not None
        self.clock = SimClock(cfg.fleet.start_time)
        self.entries = EntryTable.build(fleet)
        self.grid = GridChoice(cfg.fleet.ci_mode, cfg.fleet.ci_constant_g_per_kwh)
        self.sources = intensity_sources(fleet, self.grid, self.clock.start_utc)
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
        self.client_eval = ClientEvaluator(
            dataset, model, cfg.eval.every, cfg.eval.clients, cfg.seed, cfg.eval.max_samples
        )
        self._state_of: int | None = 0
        self.stop_reason: str | None = None
        self.wall_start = time.perf_counter()

    # ---- one round ------------------------------------------------------------------
    def base_instructions(self) -> FitInstructions:
        t, dp = self.cfg.train, self.cfg.privacy
        local = dp.mode == "local"  # DP-SGD on every client: sample-level privacy
        return FitInstructions(
            t.local_epochs, t.batch_size, t.lr, t.momentum, max_steps=t.max_local_steps,
            dp_noise_multiplier=dp.noise_multiplier if local else 0.0,
            dp_max_grad_norm=dp.clip_norm if local else 0.0,
        )  # fmt: skip

    def run_round(self) -> RoundRecord:
        """One round, as named steps: plan (and wait), select, fit, account, aggregate and
        evaluate, the server's footprint, then the state, the ledger and the record."""
        st = self.state
        round_idx = st.round + 1
        self._state_of = None  # the state is changing: no snapshot until the round is done
        wall0 = time.perf_counter()
        self.clock.now_s = st.now_s
        plan, wait_s, idle_j, idle_g = self._plan()
        start_s = self.clock.now_s
        k = plan.clients_per_round
        cohort, cohort_rows, num_available = self._select(round_idx, start_s, plan)
        reports, work, sent = self._fit(round_idx, cohort, cohort_rows, plan, k)
        account, accepted = self._account(round_idx, start_s, reports, cohort, cohort_rows, k, work)
        accuracy, loss, measured, server_flops = self._aggregate_and_evaluate(accepted, work)
        client_acc = self.client_eval.maybe(round_idx, st.global_params)
        facts = round_facts(round_idx, st.global_params, num_available, len(cohort), accepted, sent)
        probed = measure_all(self.probes, facts)
        server = self._server(start_s, account.close_s, measured, idle_j, idle_g)
        acc_before = self.history[-1].accuracy if self.history else self._initial_accuracy()
        round_carbon = self._advance_state(round_idx, cohort, accepted, accuracy, account, server)
        self.planner.observe(plan, acc_before, accuracy, round_carbon)
        wall_s = time.perf_counter() - wall0
        self._state_of = round_idx
        if self.cfg.engine.accounting:
            self.ledger.write_round(
                {
                    "round": round_idx,
                    "start_s": start_s,
                    "end_s": server.end_s,
                    "wait_s": wait_s,
                    "accuracy": accuracy,
                    "loss": loss,
                    "selected": len(reports),
                    "completed": len(accepted),
                    "server_s": server.server_s,
                    "server_energy_j": server.energy_j,
                    "server_idle_energy_j": server.idle_j,
                    "server_carbon_g": server.carbon_g,
                    "server_ci_g_per_kwh": server.ci_g_per_kwh,
                    "server_estimated": int(measured.estimated),
                    "server_flops": server_flops,
                    "server_measured": int(self.server_work is None),
                    "wall_s": wall_s,
                    **client_acc_columns(client_acc),
                    **probed,
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
            sim_time_s=server.end_s,
            wall_s=wall_s,
            energy_j=account.energy_j + server.energy_j,
            carbon_g=round_carbon,
            cum_energy_j=st.cum_energy_j,
            cum_carbon_g=st.cum_carbon_g,
            client_accuracy=client_acc,
            probes=probed,
        )
        self.history.append(record)
        return record

    def _plan(self) -> tuple[RoundPlan, float, float, float]:
        """The round's parameters, and how long it waits for a lower-carbon window: before
        anyone is picked, since who is available depends on the hour. The server idles
        meanwhile, and that counts: (plan, wait_s, idle_j, idle_g)."""
        now_s = self.state.now_s
        plan = self.planner.plan(self.rngs["adapt"])
        wait_s = self.planner.wait_s(now_s, plan.clients_per_round, plan.local_epochs)
        idle_j, idle_g = idle_server(self.fleet, self.sources[self.server_region], now_s, wait_s)
        self.clock.advance(wait_s)
        return plan, wait_s, idle_j, idle_g

    def _select(
        self, round_idx: int, start_s: float, plan: RoundPlan
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """The cohort (k x (1 + over-selection) of the available clients), each one's row
        in the planner's table (its entry, or its chosen execution target), and how many
        clients were available."""
        cfg, st = self.cfg, self.state
        k_ask = min(
            self.population.size, math.ceil(plan.clients_per_round * (1 + cfg.fleet.over_selection))
        )
        candidates = available(
            self.population, self.clock.now_utc, cfg.fleet.availability, self.rngs["availability"]
        )
        connected = self.transport.available_clients()
        if connected is not None:
            # A deployment selects only among the clients connected now (this may wait).
            candidates = np.intersect1d(candidates, connected)
        ctx = SelectionContext(
            round_idx=round_idx,
            now_s=start_s,
            population=self.population,
            participation=st.participation,
            last_selected=st.last_selected,
            last_loss=st.last_loss,
        )
        if self.planner.wants_estimates:
            est, _ = self.planner.estimate(candidates, start_s, plan.local_epochs)
            ctx.est_energy_j, ctx.est_carbon_g = est.energy_j, est.carbon_g
            ctx.est_duration_s = est.duration_s
        cohort = self.selector.select(candidates, k_ask, ctx, self.rngs["selection"])
        cohort = np.asarray(cohort, dtype=np.int64)
        return cohort, self.planner.rows(cohort, start_s, plan.local_epochs), len(candidates)

    def _fit(
        self, round_idx: int, cohort: np.ndarray, rows: np.ndarray, plan: RoundPlan, k: int
    ) -> tuple[list[ClientReport], PartialWork, FitInstructions]:
        base = self.base_instructions().with_(
            local_epochs=plan.local_epochs, batch_size=plan.batch_size
        )
        instructions = self.strategy.configure(round_idx, base)
        work = plan_partial_work(self.cfg, self.planner, cohort, rows, plan, instructions)
        # A deployment may close the round once k updates are in (over-selection).
        self.transport.expect_updates(min(k, len(cohort)))
        ids, params = list(map(int, cohort)), self.state.global_params
        sent = work.instruct(instructions)
        return self.transport.fit(round_idx, ids, params, sent), work, sent

    def _account(
        self,
        round_idx: int,
        start_s: float,
        reports: list[ClientReport],
        cohort: np.ndarray,
        cohort_rows: np.ndarray,
        k: int,
        work: PartialWork,
    ) -> tuple[CohortAccount, list[ClientReport]]:
        """Each client's time, energy and carbon, with the deadline and drop-outs; and the
        reports to aggregate."""
        cfg = self.cfg
        if cfg.engine.accounting:
            account = account_cohort(
                round_idx,
                start_s,
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
                partial_ids=work.ids,
            )
            statuses = account.status
        else:
            # Without accounting there is no modelled time: no deadline, no drop-outs
            # (RunConfig refuses those settings), every completed report is aggregated.
            account = unaccounted()
            statuses = [r.status for r in reports]
        accepted = [r for r, s in zip(reports, statuses, strict=True) if s in AGGREGATED]
        return account, accepted

    def _aggregate_and_evaluate(self, accepted: list[ClientReport], work: PartialWork) -> Evaluated:
        """The new global model and its test accuracy and loss, and the server's window:
        modelled from its counted FLOPs (returned too; 0 when measured) or measured."""
        st = self.state
        token = self.meter.begin() if self.server_work is None else None
        if accepted:
            st.global_params = self.strategy.aggregate(st.global_params, updates_of(accepted, work))
        accuracy, loss = evaluate(self.model, st.global_params, self.test_data)
        if self.server_work is None:
            return accuracy, loss, self.meter.end(token), 0.0
        return accuracy, loss, *self.server_work.measurement(self.strategy, len(accepted))

    def _server(
        self, start_s: float, close_s: float, measured: Measurement, idle_j: float, idle_g: float
    ) -> ServerCost:
        """The server's footprint of the round (``server_cost``); none without accounting."""
        if self.cfg.engine.accounting:
            cost = server_cost(
                self.fleet, self.sources, self.server_region, start_s, close_s, measured,
                idle_j, idle_g,
            )  # fmt: skip
        else:
            at_s = start_s + close_s + measured.elapsed_s
            cost = ServerCost(measured.elapsed_s, 0.0, idle_j, idle_g, at_s, idle_j)
        self.planner.last_server_j = cost.energy_j - cost.idle_j
        return cost

    def _advance_state(
        self,
        round_idx: int,
        cohort: np.ndarray,
        accepted: list[ClientReport],
        accuracy: float,
        account: CohortAccount,
        server: ServerCost,
    ) -> float:
        """The loop's state after the round; returns the round's carbon (gCO2e)."""
        st = self.state
        ids = np.array([r.client_id for r in accepted], dtype=np.int64)
        st.participation[ids] += 1
        st.last_selected[cohort] = round_idx
        st.last_loss[ids] = [r.loss for r in accepted]
        st.round = round_idx
        st.now_s = server.end_s
        st.best_accuracy = max(st.best_accuracy, accuracy)
        round_carbon = account.carbon_g + server.carbon_g
        st.cum_energy_j += account.energy_j + server.energy_j
        st.cum_carbon_g += round_carbon
        st.last_round_carbon_g = round_carbon
        return round_carbon

    def _initial_accuracy(self) -> float:
        stored = self.ledger.meta().get("initial_accuracy")
        if stored is not None:
            return float(stored)
        return evaluate(self.model, self.state.global_params, self.test_data)[0]

    def write_fairness(self) -> dict[str, str]:
        """Jain's index and the least-represented region's accuracy, into the ledger meta."""
        return write_fairness(self.ledger, self.population, self.state.participation,
                              self.dataset, self.model, self.state.global_params)  # fmt: skip

    # ---- the run ----------------------------------------------------------------------
    def should_stop_before(self) -> str | None:
        return stop_before(self.state, self.cfg.train.rounds, self.cfg.stop.carbon_budget_g)

    def should_stop_after(self, record: RoundRecord) -> str | None:
        reason = stop_after(record, self.cfg.stop.target_accuracy, self.cfg.stop.carbon_budget_g)
        return reason if reason is not None else callback_stop(self.callbacks, record, self)

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
        self.write_world()
        return reason

    def write_world(self) -> None:
        """The intensity curves the accounting used and the clients per region and device,
        into the ledger meta, for the report to read back."""
        span_s = curve_window_s(self.state.now_s)
        regions = used_regions(self.population)
        curves = intensity_record(
            self.fleet, self.sources, self.grid, self.clock.start_utc, regions, span_s
        )
        self.ledger.set_meta(INTENSITY_KEY, json.dumps(curves))
        self.ledger.set_meta(GROUPS_KEY, json.dumps(population_groups(self.population)))

    def summary(self) -> dict[str, Any]:
        wall_s = time.perf_counter() - self.wall_start
        return run_summary(self.cfg, self.history, self.ledger.conn, wall_s)

    # ---- persistence ------------------------------------------------------------------
    def snapshot(self) -> dict[str, bytes]:
        """The state after the current round, to persist with that round's ledger rows."""
        st = state_bytes(self.state, self.rngs, self.strategy, self.planner, self.probes)
        return {"loop": st}

    def _snapshot_of(self, round_idx: int) -> dict[str, bytes] | None:
        """The snapshot after ``round_idx`` if the state still is that (the ledger asks when
        it hands the round over, which may be after the next round has begun)."""
        return self.snapshot() if self._state_of == round_idx else None

    def restore(self, blob: bytes) -> None:
        restore_state(self.state, blob, self.rngs, self.strategy, self.planner, self.probes)
        set_flat(self.model, self.state.global_params)
