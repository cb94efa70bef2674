"""greenfl's side of a Flower run: the fleet the Flower nodes are bound to, the simulated
clock, the footprint of each round from what the server saw, and the ledger.

Nothing here imports Flower: ``GreenflStrategy`` (greenfl.flower.strategy) turns Flower
messages into ``NodeReply``s, and this book accounts them with the functions ``greenfl
run`` uses (``account_cohort``, ``server_cost``), so that a round that moved the same
bytes and did the same FLOPs on the same fleet entry is charged the same joules and grams."""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from greenfl._version import __version__
from greenfl.accounting.cohort import account_cohort
from greenfl.accounting.curves import (
    GROUPS_KEY,
    INTENSITY_KEY,
    curve_window_s,
    intensity_record,
    population_groups,
    used_regions,
)
from greenfl.accounting.entries import EntryTable
from greenfl.accounting.server import server_cost
from greenfl.config.run import RunConfig, build_config
from greenfl.core.errors import GreenflError
from greenfl.core.messages import ClientReport
from greenfl.engine.client_eval import client_acc_columns
from greenfl.engine.costs import CostModel
from greenfl.engine.outcome import SummaryFacts, run_summary
from greenfl.engine.parts import RNG_STREAMS
from greenfl.engine.records import RoundRecord
from greenfl.engine.session import write_outputs
from greenfl.factories.policies import selector_for
from greenfl.factories.world import (
    availability_for,
    cost_model,
    fleet_for,
    footprint_choices,
    grid_for,
    sources_for,
)
from greenfl.fleet.population import Population, available
from greenfl.flower.claims import NodeReply, checked_reports
from greenfl.footprint.measurement import Measurement
from greenfl.ledger.folder import replace_previous_run
from greenfl.ledger.schema import AGGREGATED
from greenfl.ledger.writer import LedgerWriter
from greenfl.scheduling.clock import SimClock
from greenfl.scheduling.phases import timing_for
from greenfl.selection.base import ClientSelector, LearningSelector, SelectionContext
from greenfl.strategy.base import mean_flops

log = logging.getLogger("greenfl.flower")

FLOWER_META_KEY = "flower"  # ledger meta: the Flower run's facts (inner strategy, nodes)
EVALUATE_META_KEY = "flower_evaluate"  # ledger meta: federated evaluation's footprint


@dataclass
class _RoundOpen:
    round_idx: int
    start_s: float
    checkin_s: float
    config_s: float
    wall0: float

    @property
    def work_start_s(self) -> float:
        return self.start_s + self.checkin_s + self.config_s


class FlowerBook:
    """One Flower run's greenfl ledger. ``bind(n)`` once the nodes are known (fleet
    clients 0..n-1, assigned to fleet entries as ``greenfl run`` assigns them for the same
    seed); then per round ``open_round``, optionally ``pick``, and ``close_round``;
    ``finish`` at the end writes summary.json."""

    def __init__(self, cfg: RunConfig, out: Path | None, overwrite: bool = False) -> None:
        self.cfg = cfg
        self.out = out
        self.fleet = fleet_for(cfg)
        self.entries = EntryTable.build(self.fleet, footprint_choices(cfg))
        f = cfg.fleet
        self.timing = timing_for(
            f.eligibility,
            f.checkin_window_s,
            f.checkin_interval_s,
            f.selection_timeout_s,
            f.configuration_s,
        )
        self.clock = SimClock(f.start_time)
        # the engine's random streams, numbered as greenfl run numbers them
        rng = {
            name: np.random.default_rng([cfg.seed, stream])
            for stream, name in enumerate(RNG_STREAMS, start=1)
        }
        self.rng_select, self.rng_available = rng["selection"], rng["availability"]
        self.rng_dropout = rng["dropout"]
        self.selector: ClientSelector | None = None
        self.population: Population | None = None
        self.ledger: LedgerWriter | None = None
        self.history: list[RoundRecord] = []
        self._cost_model: CostModel | None = None
        # training FLOPs per example and epoch, learned from the rounds' records (their
        # median); the strategy sets each round's local epochs from its messages' config
        self.flops_per_example = 0.0
        self.local_epochs = cfg.train.local_epochs
        self.bytes_down = self.bytes_up = 0
        self.evaluate_rows: list[dict[str, Any]] = []
        self._open: _RoundOpen | None = None
        self._overwrite = overwrite
        self._wall_start = time.perf_counter()

    # ---- set-up -----------------------------------------------------------------------
    def bind(self, num_clients: int, flower_facts: dict[str, Any]) -> None:
        """The population of ``num_clients`` fleet clients, the grid's sources for their
        regions, and the ledger (refused if ``out`` holds one, unless overwriting)."""
        if num_clients < 1:
            raise GreenflError("a Flower run with no nodes: nothing to account")
        self.cfg = cfg = _sized(self.cfg, num_clients)
        self.population = Population.assign(
            self.fleet, np.zeros(num_clients, dtype=np.int64), cfg.seed
        )
        self.sources = sources_for(cfg, self.fleet, used_regions(self.population))
        self.n = num_clients
        self.participation = np.zeros(num_clients, dtype=np.int32)
        self.last_selected = np.full(num_clients, -1, dtype=np.int32)
        self.last_loss = np.full(num_clients, np.nan, dtype=np.float32)
        self.now_s = 0.0
        self.cum_energy_j = self.cum_carbon_g = 0.0
        self.ledger = self._open_ledger()
        self.ledger.begin_run(cfg.to_dict(), self.fleet.to_dict(), __version__)
        self.ledger.set_meta(FLOWER_META_KEY, json.dumps(flower_facts, sort_keys=True))
        if cfg.selection.name != "random" or flower_facts.get("selector"):
            self.selector = selector_for(cfg)

    def _open_ledger(self) -> LedgerWriter:
        if self.out is None:
            return LedgerWriter(None)
        path = self.out / "ledger.sqlite"
        if path.exists() and not self._overwrite:
            raise GreenflError(
                f"{self.out} already holds a ledger; give GreenflStrategy another out, or "
                "overwrite=True to replace it"
            )
        self.out.mkdir(parents=True, exist_ok=True)
        replace_previous_run(self.out)
        return LedgerWriter(path, batch_s=0.0)

    # ---- a round ----------------------------------------------------------------------
    def open_round(self, round_idx: int, k_ask: int, num_candidates: int) -> None:
        """The round starts at the simulated time the last one ended, with the check-in
        and configuration phases of the world's timing before the clients' work."""
        self.clock.now_s = self.now_s
        self._open = _RoundOpen(
            round_idx=round_idx,
            start_s=self.now_s,
            checkin_s=self.timing.checkin_s(k_ask, num_candidates),
            config_s=self.timing.configuration_s,
            wall0=time.perf_counter(),
        )

    def available_clients(self) -> np.ndarray:
        """The fleet clients the world has available now (``fleet.availability``)."""
        assert self.population is not None
        mode = availability_for(self.cfg)
        return available(self.population, self.clock.now_utc, mode, self.rng_available)

    def pick(self, candidates: np.ndarray, k: int, local_epochs: int) -> np.ndarray:
        """``k`` of ``candidates`` as the configured greenfl selector picks them, priced
        with the cost model at the round's work start (per-example FLOPs learned from
        earlier rounds' records: before the first, the estimates price only the bytes)."""
        assert self.selector is not None and self._open is not None
        assert self.population is not None
        sel = SelectionContext(
            round_idx=self._open.round_idx,
            now_s=self._open.work_start_s,
            population=self.population,
            participation=self.participation,
            last_selected=self.last_selected,
            last_loss=self.last_loss,
        )
        if self.selector.needs_estimates:
            est, _ = self._costs().estimate(candidates, self._open.work_start_s, local_epochs)
            sel.est_energy_j, sel.est_carbon_g = est.energy_j, est.carbon_g
            sel.est_duration_s = est.duration_s
        chosen = self.selector.select(candidates, min(k, len(candidates)), sel, self.rng_select)
        return np.asarray(chosen, dtype=np.int64)

    def _costs(self) -> CostModel:
        """The cost model, built once; each round it prices the figures learned so far."""
        assert self.population is not None
        if self._cost_model is None:
            self._cost_model = cost_model(self.cfg, self.population, self.sources, 0.0, (0, 0))
        costs = self._cost_model
        costs.flops_per_sample = self.flops_per_example
        costs.bytes_up, costs.bytes_down = self.bytes_up or self.bytes_down, self.bytes_down
        return costs

    def close_round(
        self,
        replies: list[NodeReply],
        accuracy: float,
        loss: float,
        num_params: int,
        eval_flops: float,
    ) -> RoundRecord:
        """The round's footprint from what the server saw, its ledger rows, and its record.
        The server's work is counted as ``greenfl run`` counts it: the weighted mean of the
        aggregated updates over ``num_params`` coordinates, plus ``eval_flops`` (the
        central evaluation the server ran, counted by greenfl's FLOP counter)."""
        assert self._open is not None and self.population is not None and self.ledger
        o, cfg = self._open, self.cfg
        assert self.population is not None
        reports, self.flops_per_example = checked_reports(
            replies, self.population, self.local_epochs, self.flops_per_example, self.cfg.deploy
        )
        account = account_cohort(
            o.round_idx,
            o.work_start_s,
            reports,
            self.population,
            self.entries,
            self.sources,
            len(reports),
            cfg.fleet.deadline_s,
            cfg.fleet.dropout_prob,
            self.rng_dropout,
        )
        phases_s = o.checkin_s + o.config_s
        n_agg = sum(st in AGGREGATED for st in account.status)
        server_flops = float(mean_flops(n_agg, num_params) if n_agg else 0) + eval_flops
        server_s = server_flops / self.fleet.server.flops_per_s
        measured = Measurement(elapsed_s=server_s, energy_j=None)
        srv = server_cost(
            self.fleet,
            self.sources,
            self.fleet.region_index(self.fleet.server.region),
            o.start_s,
            phases_s + account.close_s,
            measured,
            0.0,
            0.0,
        )
        accepted = [r for r, st in zip(reports, account.status, strict=True) if st in AGGREGATED]
        wall_s = time.perf_counter() - o.wall0
        row = {
            "round": o.round_idx,
            "start_s": o.start_s,
            "end_s": srv.end_s,
            "wait_s": 0.0,
            "accuracy": accuracy,
            "loss": loss,
            "selected": len(reports),
            "completed": len(accepted),
            "server_s": srv.server_s,
            "server_energy_j": srv.energy_j,
            "server_idle_energy_j": srv.idle_j,
            "server_carbon_g": srv.carbon_g,
            "server_ci_g_per_kwh": srv.ci_g_per_kwh,
            "server_estimated": 1,
            "server_flops": server_flops,
            "server_measured": 0,
            "wall_s": wall_s,
            "checkin_s": o.checkin_s,
            "config_s": o.config_s,
            "report_window_s": account.close_s,
            **client_acc_columns(None),
            "backdoor_success": None,
            "epsilon": None,
            "dp_clip_norm": None,
            "width_accuracy": None,
        }
        self.ledger.write_round(row, account.rows, None)
        energy_j = account.energy_j + srv.energy_j
        carbon_g = account.carbon_g + srv.carbon_g
        record = RoundRecord(
            round=o.round_idx,
            accuracy=accuracy,
            loss=loss,
            selected=len(reports),
            completed=len(accepted),
            sim_time_s=srv.end_s,
            wall_s=wall_s,
            energy_j=energy_j,
            carbon_g=carbon_g,
            cum_energy_j=self.cum_energy_j + energy_j,
            cum_carbon_g=self.cum_carbon_g + carbon_g,
        )
        acc_before = self.history[-1].accuracy if self.history else math.nan
        ids = np.array([r.client_id for r in accepted], dtype=np.int64)
        self.participation[ids] += 1
        self.last_selected[[r.client_id for r in reports]] = o.round_idx
        self.last_loss[ids] = [r.loss for r in accepted]
        self.now_s = srv.end_s
        self.cum_energy_j, self.cum_carbon_g = record.cum_energy_j, record.cum_carbon_g
        if isinstance(self.selector, LearningSelector) and not math.isnan(acc_before):
            self.selector.observe(acc_before, accuracy)
        self.history.append(record)
        self._open = None
        return record

    def record_evaluate(self, round_idx: int, replies: list[NodeReply]) -> None:
        """Federated evaluation's footprint (its FLOPs and bytes, priced like training),
        kept beside the rounds in the ledger meta: the rounds' totals are training's."""
        if not replies or self.population is None:
            return
        reports = [
            ClientReport(r.client_id, "completed" if r.ok else "failed", r.reason, None,
                         max(r.num_examples, 0), r.flops if r.ok else 0.0, r.loss, r.bytes_up,
                         r.bytes_down)
            for r in replies
        ]
        account = account_cohort(
            round_idx, self.now_s, reports, self.population, self.entries, self.sources,
            len(reports), None, 0.0, self.rng_dropout,
        )
        self.evaluate_rows.append(
            {
                "round": round_idx,
                "clients": len(reports),
                "flops": float(sum(r.flops for r in reports)),
                "bytes": int(sum(r.bytes_up + r.bytes_down for r in reports)),
                "energy_j": account.energy_j,
                "carbon_g": account.carbon_g,
            }
        )

    # ---- the end ----------------------------------------------------------------------
    def finish(
        self, status: str, stop_reason: str | None, initial_accuracy: float | None
    ) -> dict[str, Any]:
        """The world the accounting used (for the report), the run's status and
        summary.json; returns the summary."""
        if self.ledger is None or self.population is None:
            raise GreenflError("the Flower run ended before any node was bound: no ledger")
        led = self.ledger
        if initial_accuracy is not None and math.isfinite(initial_accuracy):
            led.set_meta("initial_accuracy", repr(initial_accuracy))
        curves = intensity_record(
            self.fleet,
            self.sources,
            grid_for(self.cfg),
            self.clock.start_utc,
            used_regions(self.population),
            curve_window_s(self.now_s),
        )
        led.set_meta(INTENSITY_KEY, json.dumps(curves))
        led.set_meta(GROUPS_KEY, json.dumps(population_groups(self.population)))
        led.set_meta(EVALUATE_META_KEY, json.dumps(self.evaluate_rows))
        summary = run_summary(
            SummaryFacts(self.cfg.stop.target_accuracy),
            True,
            self.history,
            led.conn,
            time.perf_counter() - self._wall_start,
            int((self.participation > 0).sum()),
        )
        summary["flower"] = {
            "evaluate_energy_j": sum(r["energy_j"] for r in self.evaluate_rows),
            "evaluate_carbon_g": sum(r["carbon_g"] for r in self.evaluate_rows),
        }
        led.finish(status, stop_reason)
        if self.out is not None:
            write_outputs(self.out, self.cfg.to_dict(), summary)
        led.close()
        return summary


def _sized(cfg: RunConfig, num_clients: int) -> RunConfig:
    """The config as the run's record: its population is the nodes bound (the report
    counts participation over ``data.num_clients``)."""
    raw = cfg.to_dict()
    if raw["data"]["num_clients"] == num_clients:
        return cfg
    raw["data"]["num_clients"] = num_clients
    raw["train"]["clients_per_round"] = min(raw["train"]["clients_per_round"], num_clients)
    raw["adapt"]["clients_per_round"] = [
        k for k in raw["adapt"].get("clients_per_round", []) if k <= num_clients
    ]
    return build_config(raw, source="GreenflStrategy config")
