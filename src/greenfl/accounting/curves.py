"""What a run records about its world for the report to read back: the carbon-intensity
curves its accounting used, and how many clients each region and device held. The report
reads these from the ledger's meta table instead of rebuilding them from the config, so it
shows what the run saw, whatever sources or fleet the run was handed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np

from greenfl.accounting.sources import GridChoice, source_kind
from greenfl.core.units import S_PER_HOUR
from greenfl.fleet.catalog import Fleet
from greenfl.fleet.population import Population
from greenfl.footprint.intensity import RegionalIntensity
from greenfl.ledger.meta_keys import GROUPS_KEY, INTENSITY_KEY

__all__ = ["GROUPS_KEY", "INTENSITY_KEY", "intensity_record", "population_groups"]

CURVE_POINTS = 289  # one every 5 minutes over a day, both ends included


def curve_window_s(sim_time_s: float) -> float:
    """At least one day: a run of minutes on a flat stretch of curve says little about
    where in the day it sat."""
    return max(float(sim_time_s), 24 * S_PER_HOUR)


def intensity_record(
    fleet: Fleet,
    sources: RegionalIntensity,
    grid: GridChoice,
    start_utc: datetime,
    regions: Sequence[str],
    span_s: float,
    points: int = CURVE_POINTS,
) -> dict[str, Any]:
    """The intensity of each named region at ``points`` instants over [0, span_s], exactly
    as the accounting's ``sources`` give it, with each region's label and source in words.
    JSON-ready."""
    t = np.linspace(0.0, max(float(span_s), 1.0), points)
    out: dict[str, Any] = {}
    for name in regions:
        idx = fleet.region_index(name)
        region = fleet.regions[idx]
        out[name] = {
            "label": region.label or region.name,
            "source": source_kind(region, grid),
            "ci_g_per_kwh": np.asarray(sources[idx].mean(t, t), dtype=np.float64).tolist(),
        }
    return {
        "start_utc": start_utc.isoformat(),
        "mode": "constant" if grid.constant_g_per_kwh is not None else grid.mode,
        "constant_g_per_kwh": grid.constant_g_per_kwh,
        "server_region": fleet.server.region,
        "t_s": t.tolist(),
        "regions": out,
    }


def used_regions(population: Population) -> list[str]:
    """The regions that hold clients, and the server's, in fleet order."""
    fleet = population.fleet
    held = set(np.unique(population.region).tolist()) | {fleet.region_index(fleet.server.region)}
    return [fleet.regions[i].name for i in sorted(held)]


def population_groups(population: Population) -> dict[str, dict[str, int]]:
    """Clients per region and per device (every client, not only those who trained)."""
    fleet = population.fleet
    out: dict[str, dict[str, int]] = {}
    for column, names, values in (
        ("region", [r.name for r in fleet.regions], population.region),
        ("device", [d.name for d in fleet.devices], population.device),
    ):
        counts = np.bincount(values.astype(np.int64), minlength=len(names))
        out[column] = {names[i]: int(c) for i, c in enumerate(counts) if c > 0}
    return out
