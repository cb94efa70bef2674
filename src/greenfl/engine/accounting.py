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
from greenfl.fleet.profiles import DeviceProfile, ExecutionTarget, NetworkProfile
from greenfl.footprint.intensity import (
    CarbonIntensity,
    ConstantIntensity,
    HourlyProfile,
    RegionalIntensity,
    Trace,
)
from greenfl.footprint.model import (
    client_cost,
    embodied_carbon_g,
    operational_carbon_g,
    truncate,
)
from greenfl.ledger.rows import ColumnRows, Named
from greenfl.scheduling.clock import SimClock
from greenfl.scheduling.deadline import COMPLETED, FAILED, STRAGGLER, close_round


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
            append_profile_row(cols, d, n, d.target(e.target))
        arrays = {k: np.asarray(v, dtype=np.float64) for k, v in cols.items() if k != "target"}
        return cls(target=tuple(cols["target"]), **arrays)


def append_profile_row(
    cols: dict[str, list[Any]], d: DeviceProfile, n: NetworkProfile, t: ExecutionTarget
) -> None:
    """One EntryTable row: a device running on target ``t`` over network ``n``."""
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


def intensity_sources(fleet: Fleet, cfg: FleetConfig, clock: SimClock) -> RegionalIntensity:
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
    return RegionalIntensity(sources)


def mean_intensity(
    sources: Sequence[CarbonIntensity], region: np.ndarray, t0_s: np.ndarray, t1_s: np.ndarray
) -> np.ndarray:
    """Each client's mean intensity over [t0, t1] in its region."""
    regional = sources if isinstance(sources, RegionalIntensity) else RegionalIntensity(sources)
    return regional.mean(region, t0_s, t1_s)


@dataclass(frozen=True)
class CohortAccount:
    close_s: float
    status: np.ndarray
    rows: Sequence[dict[str, Any]]
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
    reported = np.array([r.status for r in reports], dtype=object)
    failed = reported != COMPLETED
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
    status = closed.status.copy()
    status[reported == "rejected"] = "rejected"
    # A deployed client whose task was withdrawn when the round had its k updates: the
    # straggler of the simulated path, its work until then counted.
    status[(reported == STRAGGLER) & (status == FAILED)] = STRAGGLER
    meter_modelled = np.array([r.energy_estimated for r in reports], dtype=bool)
    fleet = population.fleet
    # Columns stay numpy arrays (or indices into name lists): one conversion to Python values
    # per column when the ledger binds them, not one per value here and there.
    rows = ColumnRows(
        {
            "round": np.full(n, round_idx, dtype=np.int64),
            "client_id": ids,
            "device": Named(fleet.device_names, population.device[ids]),
            "network": Named(fleet.network_names, population.network[ids]),
            "region": Named(fleet.region_names, region),
            "target": Named(entries.target, e),
            "status": status.tolist(),
            "reason": [r.reason for r in reports],
            "num_samples": np.array([r.num_samples for r in reports], dtype=np.int64),
            "flops": flops,
            "start_s": np.full(n, float(round_start_s)),
            "compute_s": cut.compute_s.astype(np.float64),
            "bytes_up": moved_up.astype(np.int64),
            "bytes_down": moved_down.astype(np.int64),
            "comm_s": cut.comm_s.astype(np.float64),
            "energy_compute_j": energy_compute.astype(np.float64),
            "energy_comm_j": cut.energy_comm_j.astype(np.float64),
            "ci_g_per_kwh": ci.astype(np.float64),
            "carbon_operational_g": carbon_op.astype(np.float64),
            "carbon_embodied_g": carbon_emb.astype(np.float64),
            "estimated": (~has_measure | meter_modelled).astype(np.int64),
        }
    )
    return CohortAccount(
        close_s=closed.close_s,
        status=status,
        rows=rows,
        energy_j=float(energy_compute.sum() + cut.energy_comm_j.sum()),
        carbon_g=float(carbon_op.sum() + carbon_emb.sum()),
    )


def unaccounted() -> CohortAccount:
    """The account of a round run with ``engine.accounting = false``: nothing modelled."""
    return CohortAccount(
        close_s=0.0, status=np.zeros(0, dtype=object), rows=[], energy_j=0.0, carbon_g=0.0
    )


def unaccounted_summary(
    history: Sequence[Any], target_accuracy: float | None, wall_time_s: float
) -> dict[str, Any]:
    """summary.json's keys for a run without accounting: training results from the round
    records, every energy and carbon figure None (not measured, rather than zero)."""
    acc = [r.accuracy for r in history]
    reached = next(
        (r.round for r in history if target_accuracy and r.accuracy >= target_accuracy), None
    )
    selected = sum(r.selected for r in history)
    completed = sum(r.completed for r in history)
    return {
        "rounds_completed": len(history),
        "final_accuracy": acc[-1] if acc else None,
        "best_accuracy": max(acc) if acc else None,
        "target_accuracy": target_accuracy,
        "rounds_to_target": reached,
        "sim_time_s": None,
        "wall_time_s": wall_time_s,
        "energy_j": dict.fromkeys(("client_compute", "client_comm", "server", "total")),
        "carbon_g": dict.fromkeys(("operational", "embodied", "total")),
        "carbon_g_to_target": None,
        "clients_selected": selected,
        "clients_completed": completed,
        "clients_dropped": selected - completed,
    }
