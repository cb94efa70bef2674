"""The fleet a run used, rebuilt from the ledger (runs.fleet_json and config_json): the
population's groups and the grids' carbon-intensity curves over the simulated time, evaluated
with the same sources the run's accounting used."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from greenfl.accounting.sources import GridChoice, intensity_sources, source_kind
from greenfl.config import FleetConfig
from greenfl.core.errors import FleetError
from greenfl.core.units import S_PER_HOUR
from greenfl.fleet.catalog import Fleet, parse_fleet
from greenfl.fleet.population import Population
from greenfl.scheduling.clock import SimClock


def fleet_from_json(fleet: dict[str, Any]) -> Fleet:
    raw = {k: v for k, v in fleet.items() if k != "path"}
    return parse_fleet(raw, str(fleet.get("path", "ledger fleet_json")))


def client_groups(fleet: Fleet, num_clients: int, seed: int) -> dict[str, list[str]]:
    """Each client's device and region, as the run assigned them (the assignment depends
    only on the fleet's shares, the number of clients and the seed)."""
    pop = Population.assign(fleet, np.zeros(num_clients, dtype=np.int64), seed)
    return {
        "device": [fleet.devices[i].name for i in pop.device],
        "region": [fleet.regions[i].name for i in pop.region],
    }


def fleet_config(config: dict[str, Any]) -> FleetConfig:
    return FleetConfig.model_validate(config.get("fleet") or {})


@dataclass(frozen=True)
class IntensityCurves:
    start_utc: datetime
    t_s: np.ndarray  # sample times, seconds since the run's start
    ci_g_per_kwh: dict[str, np.ndarray]  # region name -> intensity at each sample
    labels: dict[str, str]  # region name -> label and source ("Germany (annual mean)")


def intensity_curves(
    fleet: Fleet,
    cfg: FleetConfig,
    regions: list[str],
    span_s: float,
    points: int = 289,
) -> IntensityCurves:
    """Intensity of each named region at ``points`` instants over [0, span_s], exactly as
    the run's accounting sees it (trace, hourly profile, annual mean or constant)."""
    clock = SimClock(cfg.start_time)  # FleetConfig makes it UTC-aware
    grid = GridChoice(cfg.ci_mode, cfg.ci_constant_g_per_kwh)
    sources = intensity_sources(fleet, grid, clock.start_utc)
    t = np.linspace(0.0, max(span_s, 1.0), points)
    out: dict[str, np.ndarray] = {}
    for name in regions:
        try:
            idx = fleet.region_index(name)
        except ValueError:
            raise FleetError(f"fleet has no region {name!r}") from None
        out[name] = np.asarray(sources[idx].mean(t, t), dtype=np.float64)
    labels = {
        r.name: f"{r.label or r.name} ({source_kind(r, grid)})"
        for r in fleet.regions
        if r.name in regions
    }
    return IntensityCurves(cfg.start_time, t, out, labels)


def curve_window_s(sim_time_s: float) -> float:
    """Plot at least one day: a run of minutes on a flat stretch of curve says little
    about where in the day it sat."""
    return max(sim_time_s, 24 * S_PER_HOUR)
