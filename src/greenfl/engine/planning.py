"""Per-round planning for the loop: what to ask of whom, and when.

- round parameters from the adaptive policy (``adapt``), if any;
- how long to wait for a lower-carbon window (``scheduling``), if any;
- per-client execution targets (``adapt.target``);
- per-candidate estimates (energy, carbon, duration) for selectors that ask for them.

Kept out of loop.py so the loop stays a readable sequence of steps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
from torch import nn

from greenfl.accounting.entries import EntryTable
from greenfl.accounting.estimates import Estimates, estimate_clients
from greenfl.accounting.targets import TargetTable
from greenfl.adapt import round_gain
from greenfl.config import RunConfig
from greenfl.core.messages import local_steps, samples_processed, steps_within
from greenfl.core.params import get_flat
from greenfl.core.units import J_PER_KWH
from greenfl.data.base import FederatedDataset
from greenfl.factories import adapter_for, codec_for, scheduler_for
from greenfl.fleet.catalog import Fleet
from greenfl.fleet.population import Population, diurnal_availability, local_hour
from greenfl.footprint.intensity import CarbonIntensity
from greenfl.footprint.model import client_cost, operational_carbon_g
from greenfl.scheduling.clock import SimClock
from greenfl.selection import ClientSelector, LearningSelector

_SCHEDULER_SAMPLE = 100_000  # clients used to forecast a round's cost at future starts


@dataclass(frozen=True)
class RoundPlan:
    clients_per_round: int
    local_epochs: int
    batch_size: int
    arm: int | None  # the adaptive policy's arm, None without one


class RoundPlanner:
    def __init__(
        self,
        cfg: RunConfig,
        model: nn.Module,
        dataset: FederatedDataset,
        fleet: Fleet,
        population: Population,
        entries: EntryTable,
        sources: Sequence[CarbonIntensity],
        selector: ClientSelector,
        clock: SimClock,
    ) -> None:
        self.cfg = cfg
        self.model = model
        self.dataset = dataset
        self.fleet = fleet
        self.population = population
        self.sources = sources
        self.clock = clock
        self.server_region = fleet.region_index(fleet.server.region)
        self.target_policy = cfg.adapt.target
        self.targets = TargetTable.build(fleet) if self.target_policy != "entry" else None
        self.table = self.targets.table if self.targets is not None else entries
        self.adapter = adapter_for(cfg.adapt, cfg.train)
        self.scheduler = scheduler_for(cfg.scheduling)
        self.wants_estimates = selector.needs_estimates
        self.learner = selector if isinstance(selector, LearningSelector) else None
        self.cost_aware_selector = self.wants_estimates
        self._flops_per_sample: float | None = None
        self._bytes: tuple[int, int] | None = None
        self.last_server_j = 0.0  # the previous round's active server energy (x PUE)

    # ---- what a round will ask of a client -------------------------------------------
    @property
    def flops_per_sample(self) -> float:
        if self._flops_per_sample is None:
            from greenfl.models import training_flops_per_sample

            self._flops_per_sample = training_flops_per_sample(
                self.model,
                self.dataset.input_shape,
                self.dataset.num_classes,
                self.cfg.train.batch_size,
            )
        return self._flops_per_sample

    @property
    def bytes_up_down(self) -> tuple[int, int]:
        """Expected (bytes_up, bytes_down): the configured codec's payload for a model-sized
        update (a fresh codec, so no client's error-feedback state is touched), and the
        float32 model."""
        if self._bytes is None:
            n = get_flat(self.model).numel()
            probe = torch.randn(n, generator=torch.Generator().manual_seed(0)) * 1e-3
            encoded = codec_for(self.cfg.compression).encode(probe, 0, torch.Generator())
            self._bytes = (len(encoded.payload), 4 * n)
        return self._bytes

    # ---- round parameters ------------------------------------------------------------
    def plan(self, rng: np.random.Generator) -> RoundPlan:
        t = self.cfg.train
        if self.adapter is None:
            return RoundPlan(t.clients_per_round, t.local_epochs, t.batch_size, None)
        arm = self.adapter.choose(rng)
        a = self.adapter.arms[arm]
        return RoundPlan(a.clients_per_round, a.local_epochs, a.batch_size, arm)

    def observe(
        self, plan: RoundPlan, acc_before: float, acc_after: float, carbon_g: float
    ) -> None:
        if self.adapter is not None and plan.arm is not None:
            self.adapter.update(plan.arm, round_gain(acc_before, acc_after), carbon_g)
        if self.learner is not None:
            self.learner.observe(acc_before, acc_after)

    # ---- targets and estimates -------------------------------------------------------
    def rows(self, clients: np.ndarray, start_s: float, local_epochs: int) -> np.ndarray:
        """Each client's row in ``self.table``: its entry, or its chosen execution target."""
        entry = self.population.entry[clients]
        if self.targets is None:
            return entry

        def cost(rows: np.ndarray) -> np.ndarray:
            est = self._estimate(clients, rows, start_s, local_epochs)
            return est.energy_j if self.target_policy == "energy" else est.carbon_g

        return self.targets.choose(entry, self.target_policy, cost)

    def _estimate(
        self, clients: np.ndarray, rows: np.ndarray, start_s: float | np.ndarray, epochs: int
    ) -> Estimates:
        up, down = self.bytes_up_down
        return estimate_clients(
            clients,
            rows,
            self.population,
            self.table,
            self.sources,
            start_s,
            self.flops_per_sample,
            epochs,
            up,
            down,
            batch_size=self.cfg.train.batch_size,
            max_steps=self.cfg.train.max_local_steps,
        )

    def estimate(
        self, clients: np.ndarray, start_s: float, local_epochs: int
    ) -> tuple[Estimates, np.ndarray]:
        rows = self.rows(clients, start_s, local_epochs)
        return self._estimate(clients, rows, start_s, local_epochs), rows

    # ---- partial work ----------------------------------------------------------------
    def partial_steps(
        self, clients: np.ndarray, rows: np.ndarray, plan: RoundPlan, deadline_s: float
    ) -> dict[int, int]:
        """Step caps of the clients that cannot do the round's work by the deadline: the
        most steps whose download, training and upload all fit in it (the modelled times
        the accounting will charge). A client that cannot fit one step keeps its full work:
        it straggles, and is not aggregated."""
        t, tb = self.cfg.train, self.table
        n = self.population.num_samples[clients]
        e, b = plan.local_epochs, plan.batch_size
        up, down = self.bytes_up_down
        full = samples_processed(n, e, b, t.max_local_steps)
        cost = client_cost(
            self.flops_per_sample * full.astype(np.float64), up, down, tb.flops_per_s[rows],
            tb.active_power_w[rows], tb.up_mbps[rows], tb.down_mbps[rows],
            tb.radio_power_w[rows], tb.network_kwh_per_gb[rows], tb.tail_s[rows],
            tb.tail_power_w[rows],
        )  # fmt: skip
        late = cost.total_s > deadline_s
        if not late.any():
            return {}
        # A hair inside the deadline: the accounting sums the same terms in another order.
        compute_budget_s = deadline_s * (1 - 1e-9) - cost.comm_s
        budget = compute_budget_s * tb.flops_per_s[rows] / self.flops_per_sample
        steps = steps_within(budget, n, e, b, t.max_local_steps)
        cut = late & (steps >= 1) & (steps < local_steps(n, e, b, t.max_local_steps))
        return dict(zip(clients[cut].tolist(), steps[cut].tolist(), strict=True))

    # ---- waiting ---------------------------------------------------------------------
    def wait_s(self, now_s: float, k: int, local_epochs: int) -> float:
        if self.scheduler is None:
            return 0.0
        n = self.population.size
        sample = np.arange(n, dtype=np.int64)
        if n > _SCHEDULER_SAMPLE:
            sample = np.random.default_rng(0).choice(n, _SCHEDULER_SAMPLE, replace=False)
        k_eff = k * len(sample) / n

        def round_carbon_g(starts: np.ndarray) -> np.ndarray:
            out = np.empty(len(starts))
            for j, s in enumerate(starts):
                est, _ = self.estimate(sample, float(s), local_epochs)
                p = self._availability(sample, float(s))
                out[j] = self._cohort_carbon(est.carbon_g, p, k_eff)
            server_ci = self.sources[self.server_region].mean(starts, starts)
            return out + operational_carbon_g(self.last_server_j, server_ci)

        srv = self.fleet.server

        def idle_carbon_g(t0: float, starts: np.ndarray) -> np.ndarray:
            ci = self.sources[self.server_region].mean(np.full(len(starts), t0), starts)
            return operational_carbon_g(srv.standby_w * (starts - t0) * srv.pue, ci)

        return self.scheduler.plan(now_s, round_carbon_g, idle_carbon_g)

    def _availability(self, clients: np.ndarray, start_s: float) -> np.ndarray:
        if self.cfg.fleet.availability == "always":
            return np.ones(len(clients))
        when = self.clock.start_utc + timedelta(seconds=start_s)
        p_region = diurnal_availability(local_hour(self.fleet, when))
        return p_region[self.population.region[clients]]

    def _cohort_carbon(self, carbon_g: np.ndarray, p_avail: np.ndarray, k: float) -> float:
        """Expected carbon of a k-client cohort drawn from clients available with chance p:
        a cost-aware selector takes the cheapest available, any other a random draw."""
        if p_avail.sum() <= 0:
            return float("inf")
        if not self.cost_aware_selector:
            return float(k * (p_avail * carbon_g).sum() / p_avail.sum())
        order = np.argsort(carbon_g, kind="stable")
        c, p = carbon_g[order], p_avail[order]
        taken = np.clip(k - (np.cumsum(p) - p), 0.0, p)  # expected picks of each client
        return float((taken * c).sum())

    # ---- persistence -----------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "adapter": self.adapter.state_dict() if self.adapter is not None else {},
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else {},
            "last_server_j": self.last_server_j,
            "selector": self.learner.state_dict() if self.learner is not None else {},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.adapter is not None:
            self.adapter.load_state_dict(state.get("adapter", {}))
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state.get("scheduler", {}))
        self.last_server_j = float(state.get("last_server_j", 0.0))
        if self.learner is not None:
            self.learner.load_state_dict(state.get("selector", {}))


def idle_server(
    fleet: Fleet, source: CarbonIntensity, t0_s: float, wait_s: float
) -> tuple[float, float]:
    """(energy_j, carbon_g) of the server standing by from t0 for wait_s: its idle power x
    PUE if dedicated; a shared server is charged nothing for waiting."""
    srv = fleet.server
    if wait_s <= 0 or srv.standby_w == 0:
        return 0.0, 0.0
    energy_j = srv.standby_w * wait_s * srv.pue
    ci = float(source.mean(np.array([t0_s]), np.array([t0_s + wait_s]))[0])
    return energy_j, energy_j / J_PER_KWH * ci
