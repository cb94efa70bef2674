"""Turning a cohort's reports into time, energy and carbon: the footprint model applied to
the round's clients, with drop-outs, the deadline and over-selection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from greenfl.config import FleetConfig
from greenfl.engine.transport import ClientReport
from greenfl.fleet.catalog import Fleet
from greenfl.fleet.population import Population
from greenfl.footprint.intensity import CarbonIntensity, ConstantIntensity, HourlyProfile, Trace
from greenfl.footprint.model import (
    client_cost,
    embodied_carbon_g,
    operational_carbon_g,
    truncate,
)
from greenfl.scheduling.clock import SimClock
from greenfl.scheduling.deadline import COMPLETED, close_round


@dataclass(frozen=True)
class EntryTable:
    """The fleet's numbers per population entry (device + target + network + region), so a
    client's profile is one integer lookup."""

    flops_per_s: np.ndarray
    active_power_w: np.ndarray
    embodied_kg: np.ndarray
    lifetime_years: np.ndarray
    active_share: np.ndarray
    up_mbps: np.ndarray
    down_mbps: np.ndarray
    radio_power_w: np.ndarray
    network_kwh_per_gb: np.ndarray
    target: tuple[str, ...]

    @classmethod
    def build(cls, fleet: Fleet) -> EntryTable:
        cols: dict[str, list[Any]] = {k: [] for k in cls.__dataclass_fields__}
        for e in fleet.population:
            d = fleet.devices[fleet.device_index(e.device)]
            n = fleet.networks[fleet.network_index(e.network)]
            t = d.target(e.target)
            cols["flops_per_s"].append(t.flops_per_s)
            cols["active_power_w"].append(t.active_power_w)
            cols["embodied_kg"].append(d.embodied_kg)
            cols["lifetime_years"].append(d.lifetime_years)
            cols["active_share"].append(d.active_share)
            cols["up_mbps"].append(n.up_mbps)
            cols["down_mbps"].append(n.down_mbps)
            cols["radio_power_w"].append(n.radio_power_w)
            cols["network_kwh_per_gb"].append(n.network_kwh_per_gb)
            cols["target"].append(t.name)
        arrays = {k: np.asarray(v, dtype=np.float64) for k, v in cols.items() if k != "target"}
        return cls(target=tuple(cols["target"]), **arrays)


def intensity_sources(fleet: Fleet, cfg: FleetConfig, clock: SimClock) -> list[CarbonIntensity]:
    """One carbon-intensity source per region, in fleet order."""
    sources: list[CarbonIntensity] = []
    for r in fleet.regions:
        if cfg.ci_constant_g_per_kwh is not None:
            sources.append(ConstantIntensity(cfg.ci_constant_g_per_kwh))
        elif cfg.ci_mode == "annual":
            sources.append(ConstantIntensity(r.ci_g_per_kwh))
        elif r.trace:
            sources.append(Trace.from_csv(r.trace, clock.start_utc))
        elif r.hourly:
            sources.append(HourlyProfile(r.hourly, r.utc_offset_h, clock.start_utc))
        else:
            sources.append(ConstantIntensity(r.ci_g_per_kwh))
    return sources


def mean_intensity(
    sources: Sequence[CarbonIntensity], region: np.ndarray, t0_s: np.ndarray, t1_s: np.ndarray
) -> np.ndarray:
    out = np.empty(len(region), dtype=np.float64)
    for r in np.unique(region):
        mask = region == r
        out[mask] = sources[int(r)].mean(t0_s[mask], t1_s[mask])
    return out


@dataclass(frozen=True)
class CohortAccount:
    close_s: float
    status: np.ndarray
    rows: list[dict[str, Any]]
    energy_j: float
    carbon_g: float


def account_cohort(
    round_idx: int,
    round_start_s: float,
    reports: Sequence[ClientReport],
    population: Population,
    entries: EntryTable,
    sources: Sequence[CarbonIntensity],
    k: int,
    deadline_s: float | None,
    dropout_prob: float,
    rng: np.random.Generator,
    rows: np.ndarray | None = None,
) -> CohortAccount:
    """``rows``: each report's row in ``entries`` where it is not the client's population
    entry (e.g. a table of execution targets, one row per entry and target)."""
    ids = np.array([r.client_id for r in reports], dtype=np.int64)
    e = population.entry[ids] if rows is None else np.asarray(rows, dtype=np.int64)
    flops = np.array([r.flops for r in reports], dtype=np.float64)
    up = np.array([r.bytes_up for r in reports], dtype=np.int64)
    down = np.array([r.bytes_down for r in reports], dtype=np.int64)
    power = entries.active_power_w[e]
    radio, kwh_gb = entries.radio_power_w[e], entries.network_kwh_per_gb[e]
    cost = client_cost(
        flops,
        up,
        down,
        entries.flops_per_s[e],
        power,
        entries.up_mbps[e],
        entries.down_mbps[e],
        radio,
        kwh_gb,
    )
    measured_s = np.array(
        [np.nan if r.measured_compute_s is None else r.measured_compute_s for r in reports]
    )
    if np.isfinite(measured_s).any():
        # A real client's own timing replaces the modelled compute time.
        cost = type(cost)(
            compute_s=np.where(np.isfinite(measured_s), measured_s, cost.compute_s),
            down_s=cost.down_s,
            up_s=cost.up_s,
            energy_compute_j=np.where(
                np.isfinite(measured_s), power * np.nan_to_num(measured_s), cost.energy_compute_j
            ),
            energy_comm_j=cost.energy_comm_j,
        )
    total_s = cost.total_s
    n = len(reports)
    dropped = rng.random(n) < dropout_prob
    drop_at = np.where(dropped, rng.random(n) * total_s, np.inf)
    failed = np.array([r.status != COMPLETED for r in reports], dtype=bool)
    closed = close_round(total_s, drop_at, failed, k, deadline_s)
    cut, moved_down, moved_up = truncate(cost, closed.active_s, up, down, power, radio, kwh_gb)
    measured_j = np.array(
        [np.nan if r.measured_energy_j is None else r.measured_energy_j for r in reports]
    )
    has_measure = np.isfinite(measured_j) & (closed.status == COMPLETED)
    energy_compute = np.where(has_measure, measured_j, cut.energy_compute_j)
    active_s = cut.total_s
    region = population.region[ids]
    ci = mean_intensity(sources, region, round_start_s + 0 * active_s, round_start_s + active_s)
    carbon_op = operational_carbon_g(energy_compute + cut.energy_comm_j, ci)
    carbon_emb = embodied_carbon_g(
        active_s, entries.embodied_kg[e], entries.lifetime_years[e], entries.active_share[e]
    )
    fleet = population.fleet
    status = closed.status.copy()
    rows = []
    for i, r in enumerate(reports):
        if r.status == "rejected":
            status[i] = "rejected"
        rows.append(
            {
                "round": round_idx,
                "client_id": int(ids[i]),
                "device": fleet.devices[population.device[ids[i]]].name,
                "network": fleet.networks[population.network[ids[i]]].name,
                "region": fleet.regions[region[i]].name,
                "target": entries.target[e[i]],
                "status": str(status[i]),
                "reason": r.reason,
                "num_samples": int(r.num_samples),
                "flops": float(flops[i]),
                "start_s": float(round_start_s),
                "compute_s": float(cut.compute_s[i]),
                "bytes_up": int(moved_up[i]),
                "bytes_down": int(moved_down[i]),
                "comm_s": float(cut.comm_s[i]),
                "energy_compute_j": float(energy_compute[i]),
                "energy_comm_j": float(cut.energy_comm_j[i]),
                "ci_g_per_kwh": float(ci[i]),
                "carbon_operational_g": float(carbon_op[i]),
                "carbon_embodied_g": float(carbon_emb[i]),
                "estimated": int(not has_measure[i]),
            }
        )
    return CohortAccount(
        close_s=closed.close_s,
        status=status,
        rows=rows,
        energy_j=float(energy_compute.sum() + cut.energy_comm_j.sum()),
        carbon_g=float(carbon_op.sum() + carbon_emb.sum()),
    )
