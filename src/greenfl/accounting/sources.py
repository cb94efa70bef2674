"""One carbon-intensity source per region of a fleet, as a run's config asks for them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np

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


@dataclass(frozen=True)
class GridChoice:
    """Which carbon-intensity curve each region gets: ``auto`` (its trace or hour-of-day
    profile where the fleet file gives one), ``annual`` (its annual mean), or one
    ``constant_g_per_kwh`` for every region (set: it wins)."""

    mode: Literal["auto", "annual"] = "auto"
    constant_g_per_kwh: float | None = None


def _curve(region: Region, cfg: GridChoice) -> str:
    """Which curve ``region`` gets under ``cfg``: the one choice both the accounting and
    what the report and ``greenfl fleet show`` print are made from."""
    if cfg.constant_g_per_kwh is not None:
        return "constant"
    if cfg.mode == "annual":
        return "annual"
    if region.trace and region.trace_year is not None:
        return "yearly trace"
    if region.trace:
        return "trace"
    return "hourly" if region.hourly else "annual"


def intensity_sources(fleet: Fleet, cfg: GridChoice, start_utc: datetime) -> RegionalIntensity:
    """One carbon-intensity source per region, in fleet order, for a run whose simulated
    clock starts at ``start_utc``. Reads every trace file: a missing one fails here."""
    sources: list[CarbonIntensity] = []
    for r in fleet.regions:
        curve = _curve(r, cfg)
        if curve == "constant":
            sources.append(ConstantIntensity(float(cfg.constant_g_per_kwh or 0.0)))
        elif curve == "yearly trace":
            sources.append(yearly_trace(str(r.trace), int(r.trace_year or 0), start_utc))
        elif curve == "trace":
            sources.append(Trace.from_csv(str(r.trace), start_utc))
        elif curve == "hourly":
            sources.append(HourlyProfile(tuple(r.hourly or ()), r.utc_offset_h, start_utc))
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


def source_kind(region: Region, cfg: GridChoice) -> str:
    """Which curve the accounting uses for ``region`` under ``cfg``, in words (for the
    report and ``greenfl fleet show``)."""
    curve = _curve(region, cfg)
    if curve == "constant":
        return f"constant {cfg.constant_g_per_kwh:g}"
    if curve == "yearly trace":
        return f"{region.trace_year} hourly trace, repeated yearly"
    return {"trace": "trace", "hourly": "hour-of-day profile"}.get(curve, "annual mean")
