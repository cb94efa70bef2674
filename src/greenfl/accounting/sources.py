"""One carbon-intensity source per region of a fleet, as a run's config asks for them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from greenfl.config import FleetConfig
from greenfl.fleet.catalog import Fleet
from greenfl.fleet.profiles import Region
from greenfl.footprint.intensity import (
    CarbonIntensity,
    ConstantIntensity,
    HourlyProfile,
    RegionalIntensity,
    Trace,
    yearly_trace,
)
from greenfl.scheduling.clock import SimClock


def intensity_sources(fleet: Fleet, cfg: FleetConfig, clock: SimClock) -> RegionalIntensity:
    """One carbon-intensity source per region, in fleet order."""
    sources: list[CarbonIntensity] = []
    for r in fleet.regions:
        if cfg.ci_constant_g_per_kwh is not None:
            sources.append(ConstantIntensity(cfg.ci_constant_g_per_kwh))
        elif cfg.ci_mode == "annual":
            sources.append(ConstantIntensity(r.ci_g_per_kwh))
        elif r.trace and r.trace_year is not None:
            sources.append(yearly_trace(r.trace, r.trace_year, clock.start_utc))
        elif r.trace:
            sources.append(Trace.from_csv(r.trace, clock.start_utc))
        elif r.hourly:
            sources.append(HourlyProfile(r.hourly, r.utc_offset_h, clock.start_utc))
        else:
            sources.append(ConstantIntensity(r.ci_g_per_kwh))
    return RegionalIntensity(sources)


def mean_intensity(
    sources: Sequence[CarbonIntensity],
    region: np.ndarray,
    t0_s: np.ndarray | float,
    t1_s: np.ndarray | float,
) -> np.ndarray:
    """Each client's mean intensity over [t0, t1] in its region."""
    regional = sources if isinstance(sources, RegionalIntensity) else RegionalIntensity(sources)
    return regional.mean(region, t0_s, t1_s)


def source_kind(region: Region, cfg: FleetConfig) -> str:
    """Which curve the accounting uses for ``region`` under ``cfg``, in words (for the
    report and ``greenfl fleet show``)."""
    if cfg.ci_constant_g_per_kwh is not None:
        return f"constant {cfg.ci_constant_g_per_kwh:g}"
    if cfg.ci_mode == "annual":
        return "annual mean"
    if region.trace and region.trace_year is not None:
        return f"{region.trace_year} hourly trace, repeated yearly"
    if region.trace:
        return "trace"
    if region.hourly:
        return "hour-of-day profile"
    return "annual mean"
