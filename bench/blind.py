"""The selector's levers of greenfl's policy, each switched off alone (issue 28): the same
carbon selector (fewest expected gCO2e per unit of statistical utility) priced with a cost
model blind to one difference between clients; everything else, the accounting, the
execution targets the engine picks, the carbon-aware wait, is the run's own.

region            every client's grid priced at one curve: at each time, the mean over the
                  clients of their regions' forecast intensity (the run's own persistence
                  forecast), so time is still seen, place is not; in a one-country world
                  this is that country's curve and the lever is exactly 1
network           every client's network figures (throughput, radio and tail power, kWh/GB,
                  set-up, round trip, access share) at the population's mean
device            every client's device figures (FLOP/s, power, embodied carbon, lifetime,
                  active share, charging efficiency) at the population's mean
client data size  every client's sample count at the population's mean, in the cost and in
                  the utility (|B_i| x loss) alike

    blind.run_blind(cfg, out_dir, "region")      # like greenfl.run(cfg, out_dir)
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np

from greenfl.config import RunConfig
from greenfl.core.threads import torch_threads
from greenfl.engine.session import run_session
from greenfl.factories import build_loop
from greenfl.footprint.intensity import RegionalIntensity
from greenfl.selection.cost import CarbonSelector

NETWORK_COLUMNS = (
    "up_mbps", "down_mbps", "radio_power_w", "network_kwh_per_gb", "tail_s", "tail_power_w",
    "setup_s", "rtt_s", "access_share",
)  # fmt: skip
DEVICE_COLUMNS = (
    "flops_per_s", "active_power_w", "embodied_kg", "lifetime_years", "active_share",
    "charging_efficiency",
)  # fmt: skip
LEVERS = ("region", "network", "device", "client data size")


class ClientMeanIntensity:
    """One curve: at each time, the regions' intensities (``sources``) averaged with
    ``weights`` (each region's share of the clients)."""

    def __init__(self, sources: RegionalIntensity, weights: np.ndarray) -> None:
        self.sources = sources
        self.regions = np.flatnonzero(weights)
        self.weights = weights[self.regions]

    def mean(self, t0_s: np.ndarray, t1_s: np.ndarray) -> np.ndarray:
        t0, t1 = np.broadcast_arrays(np.asarray(t0_s, float), np.asarray(t1_s, float))
        out = np.zeros(t0.shape)
        for r, w in zip(self.regions, self.weights, strict=True):
            out += w * self.sources.mean(np.full(t0.shape, r), t0, t1)
        return out


class BlindCarbonSelector:
    """The carbon selector on a blind copy of the run's cost model (``bind`` makes it)."""

    name = "carbon"
    needs_estimates = True

    def __init__(self, lever: str, local_epochs: int, params: dict | None = None) -> None:
        if lever not in LEVERS:
            raise ValueError(f"lever {lever!r}: one of {LEVERS}")
        self.lever = lever
        self.local_epochs = local_epochs
        self.inner = CarbonSelector(CarbonSelector.Params(**(params or {})))
        self.costs = None

    def bind(self, costs) -> None:  # noqa: ANN001 (greenfl.engine.costs.CostModel)
        blind = copy.copy(costs)
        pop = costs.population
        rows = costs.rows(np.arange(pop.size), 0.0, self.local_epochs)
        if self.lever == "region":
            n = len(pop.fleet.regions)
            weights = np.bincount(pop.region, minlength=n).astype(np.float64)
            one = ClientMeanIntensity(costs.sources, weights / weights.sum())
            blind.sources = RegionalIntensity([one] * n)
        elif self.lever in ("network", "device"):
            cols = NETWORK_COLUMNS if self.lever == "network" else DEVICE_COLUMNS
            table = costs.table
            flat = {c: np.full_like(getattr(table, c), getattr(table, c)[rows].mean())
                    for c in cols}  # fmt: skip
            blind.table = dataclasses.replace(table, **flat)
            if costs.targets is not None:
                blind.targets = dataclasses.replace(costs.targets, table=blind.table)
        else:  # client data size
            n = np.full_like(pop.num_samples, int(round(float(pop.num_samples.mean()))))
            blind.population = dataclasses.replace(pop, num_samples=n)
        self.costs = blind

    def select(self, candidates, k, ctx, rng):  # noqa: ANN001
        assert self.costs is not None, "bind(costs) first"
        est, _ = self.costs.estimate(candidates, ctx.now_s, self.local_epochs)
        seen = dataclasses.replace(
            ctx,
            population=self.costs.population,
            est_energy_j=est.energy_j,
            est_carbon_g=est.carbon_g,
            est_duration_s=est.duration_s,
        )
        return self.inner.select(candidates, k, seen, rng)


def run_blind(cfg: RunConfig, out: str | Path, lever: str) -> dict:
    """``greenfl.run(cfg, out)`` with the carbon selector blind to ``lever``: its summary."""
    if cfg.selection.name != "carbon" or cfg.adapt.name not in (None, "none"):
        raise ValueError("blind levers are greenfl's carbon selector at fixed round parameters")
    selector = BlindCarbonSelector(lever, cfg.train.local_epochs, cfg.selection.params)
    with torch_threads(1):
        loop = build_loop(cfg, out, selector=selector)
    selector.bind(loop.parts.costs)
    return run_session(loop, cfg.to_dict(), Path(out)).summary
