"""Carbon-aware waiting: how long a round waits for a lower-carbon window. The scheduler
(greenfl.scheduling) picks among candidate starts by a forecast the engine makes here: the
expected carbon of a cohort started then (its clients at their grids' forecast intensity,
available with the diurnal chance of that hour) plus the server's, against the server's
idle carbon while it waits."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np

from greenfl.engine.costs import CostModel
from greenfl.fleet.eligibility import eligible_chance
from greenfl.fleet.population import Population, diurnal_availability, local_hour
from greenfl.footprint.intensity import RegionalIntensity
from greenfl.footprint.model import operational_carbon_g
from greenfl.scheduling.carbon import CarbonAwareScheduler

_SCHEDULER_SAMPLE = 100_000  # clients used to forecast a round's cost at future starts


class CarbonWait:
    """``cost_aware``: the selector takes the cheapest available clients (else it draws at
    random), which changes what a cohort is expected to cost."""

    def __init__(
        self,
        scheduler: CarbonAwareScheduler,
        costs: CostModel,
        population: Population,
        sources: RegionalIntensity,
        start_utc: datetime,
        availability: str,
        cost_aware: bool,
    ) -> None:
        self.scheduler = scheduler
        self.costs = costs
        self.population = population
        self.fleet = population.fleet
        self.sources = sources
        self.start_utc = start_utc
        self.availability = availability
        self.cost_aware = cost_aware
        self.server_region = self.fleet.region_index(self.fleet.server.region)
        self.last_server_j = 0.0  # the previous round's active server energy (x PUE)

    def observe_server(self, active_j: float) -> None:
        """The round's active server energy (x PUE): the next forecast's server share."""
        self.last_server_j = active_j

    def wait_s(self, now_s: float, k: int, local_epochs: int) -> float:
        n = self.population.size
        sample = np.arange(n, dtype=np.int64)
        if n > _SCHEDULER_SAMPLE:
            sample = np.random.default_rng(0).choice(n, _SCHEDULER_SAMPLE, replace=False)
        k_eff = k * len(sample) / n

        def round_carbon_g(starts: np.ndarray) -> np.ndarray:
            out = np.empty(len(starts))
            for j, s in enumerate(starts):
                est, _ = self.costs.estimate(sample, float(s), local_epochs)
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
        if self.availability == "always":
            return np.ones(len(clients))
        when = self.start_utc + timedelta(seconds=start_s)
        if self.availability == "production":
            pop = self.population
            return eligible_chance(self.fleet, when)[pop.device[clients], pop.region[clients]]
        p_region = diurnal_availability(local_hour(self.fleet, when))
        return p_region[self.population.region[clients]]

    def _cohort_carbon(self, carbon_g: np.ndarray, p_avail: np.ndarray, k: float) -> float:
        """Expected carbon of a k-client cohort drawn from clients available with chance p:
        a cost-aware selector takes the cheapest available, any other a random draw."""
        if p_avail.sum() <= 0:
            return float("inf")
        if not self.cost_aware:
            return float(k * (p_avail * carbon_g).sum() / p_avail.sum())
        order = np.argsort(carbon_g, kind="stable")
        c, p = carbon_g[order], p_avail[order]
        taken = np.clip(k - (np.cumsum(p) - p), 0.0, p)  # expected picks of each client
        return float((taken * c).sum())

    def state_dict(self) -> dict[str, Any]:
        return {"scheduler": self.scheduler.state_dict(), "last_server_j": self.last_server_j}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state.get("scheduler", {}))
        self.last_server_j = float(state.get("last_server_j", 0.0))
