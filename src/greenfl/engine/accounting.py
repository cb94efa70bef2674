"""Turning a cohort's reports into time, energy and carbon: the footprint model applied to
the round's clients, with drop-outs, the deadline and over-selection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from itertools import chain
from typing import Any, NamedTuple

import numpy as np

from greenfl.config import FleetConfig
from greenfl.engine.transport import ClientReport
from greenfl.fleet.catalog import Fleet
from greenfl.fleet.population import Population
from greenfl.fleet.profiles import DeviceProfile, ExecutionTarget, NetworkProfile, PopulationEntry
from greenfl.footprint.intensity import (
    CarbonIntensity,
    ConstantIntensity,
    HourlyProfile,
    RegionalIntensity,
    Trace,
)
from greenfl.footprint.model import (
    cost_from_rates,
    embodied_carbon_g,
    network_j_per_byte,
    operational_carbon_g,
    s_per_byte,
    truncate,
)
from greenfl.ledger.rows import ColumnRows, Constant, DeferredRows, Named
from greenfl.scheduling.clock import SimClock
from greenfl.scheduling.deadline import COMPLETED, FAILED, STRAGGLER, close_round
from greenfl.units import J_PER_KWH


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
    # The row's names and region, so a cohort's ledger columns need no lookups per client.
    device: tuple[str, ...]
    network: tuple[str, ...]
    region: tuple[str, ...]
    region_index: np.ndarray

    @classmethod
    def build(cls, fleet: Fleet) -> EntryTable:
        cols = profile_columns()
        for e in fleet.population:
            d = fleet.devices[fleet.device_index(e.device)]
            n = fleet.networks[fleet.network_index(e.network)]
            append_profile_row(cols, fleet, e, d, n, d.target(e.target))
        return cls.of(cols)

    @classmethod
    def of(cls, cols: dict[str, list[Any]]) -> EntryTable:
        """A table from the columns of ``append_profile_row``."""
        names = ("target", "device", "network", "region")
        arrays = {k: np.asarray(v, dtype=np.float64) for k, v in cols.items() if k not in names}
        arrays["region_index"] = np.asarray(cols["region_index"], dtype=np.int64)
        return cls(**{k: tuple(cols[k]) for k in names}, **arrays)

    @cached_property
    def rates(self) -> np.ndarray:
        """What the footprint model needs per row, side by side (``[row, column]``: flops
        per s, active W, s per byte up, s per byte down, radio W, network J per byte,
        embodied gCO2e per active s): a cohort's profiles are then one gather, not nine, and
        the per-row divisions are done once, not every round."""
        return np.column_stack(
            [
                self.flops_per_s,
                self.active_power_w,
                s_per_byte(self.up_mbps),
                s_per_byte(self.down_mbps),
                self.radio_power_w,
                network_j_per_byte(self.network_kwh_per_gb),
                embodied_carbon_g(1.0, self.embodied_kg, self.lifetime_years, self.active_share),
            ]
        )

    @cached_property
    def rate_rows(self) -> list[list[float]]:
        """``rates`` as Python lists, one per row: for the accounting's loop over a cohort."""
        return self.rates.tolist()

    @cached_property
    def region_list(self) -> list[int]:
        return self.region_index.tolist()


def profile_columns() -> dict[str, list[Any]]:
    return {k: [] for k in EntryTable.__dataclass_fields__}


def append_profile_row(
    cols: dict[str, list[Any]],
    fleet: Fleet,
    entry: PopulationEntry,
    d: DeviceProfile,
    n: NetworkProfile,
    t: ExecutionTarget,
) -> None:
    """One EntryTable row: population ``entry``'s device running on target ``t`` over
    network ``n``."""
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
    cols["device"].append(d.name)
    cols["network"].append(n.name)
    cols["region"].append(entry.region)
    cols["region_index"].append(fleet.region_index(entry.region))


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
    sources: Sequence[CarbonIntensity],
    region: np.ndarray,
    t0_s: np.ndarray | float,
    t1_s: np.ndarray | float,
) -> np.ndarray:
    """Each client's mean intensity over [t0, t1] in its region."""
    regional = sources if isinstance(sources, RegionalIntensity) else RegionalIntensity(sources)
    return regional.mean(region, t0_s, t1_s)


@dataclass(frozen=True)
class CohortAccount:
    close_s: float
    status: list[str]  # per report, in report order
    rows: Sequence[dict[str, Any]]
    energy_j: float
    carbon_g: float


# Where each field sits in a report (a named tuple): the cohort's reports are read column by
# column with one zip, not an attribute lookup per field and client.
(
    _ID,
    _STATUS,
    _REASON,
    _DELTA,
    _SAMPLES,
    _FLOPS_DONE,
    _UP_B,
    _DOWN_B,
    _MEASURED_J,
    _MEASURED_S,
    _MODELLED,
) = (
    ClientReport._fields.index(name)
    for name in (
        "client_id",
        "status",
        "reason",
        "delta",
        "num_samples",
        "flops",
        "bytes_up",
        "bytes_down",
        "measured_energy_j",
        "measured_compute_s",
        "energy_estimated",
    )
)


def _measured(values: tuple[float | None, ...]) -> np.ndarray | None:
    """A column of optional measurements as floats (NaN where missing); None if none."""
    if values.count(None) == len(values):
        return None
    return np.array(values, dtype=np.float64)


def rows_of(ids: np.ndarray, cohort: np.ndarray, cohort_rows: np.ndarray) -> np.ndarray:
    """Each reporting client's table row, given the rows of the cohort asked (reports come
    in any order, and possibly fewer, in a deployment)."""
    order = np.argsort(cohort, kind="stable")
    at = np.searchsorted(cohort, ids, sorter=order)
    if (at >= len(cohort)).any() or (cohort[order[np.minimum(at, len(cohort) - 1)]] != ids).any():
        raise ValueError("a report from a client that was not in the cohort")
    return cohort_rows[order[at]]


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
    cohort: np.ndarray | None = None,
) -> CohortAccount:
    """``rows``: each report's row in ``entries`` where it is not the client's population
    entry (e.g. a table of execution targets, one row per entry and target); with
    ``cohort``, the rows of the clients asked, in cohort order, looked up by client id."""
    n = len(reports)
    cols = list(zip(*reports, strict=True)) if n else [()] * len(ClientReport._fields)
    measured_s, measured_j = _measured(cols[_MEASURED_S]), _measured(cols[_MEASURED_J])
    reported: list[str] = list(cols[_STATUS])
    in_cohort_order = rows is not None and (cohort is None or list(cols[_ID]) == cohort.tolist())
    if (
        in_cohort_order
        and measured_s is None
        and measured_j is None
        and deadline_s is None
        and dropout_prob <= 0
        and k >= n
        and reported.count(COMPLETED) == n
        and isinstance(sources, RegionalIntensity)
    ):
        # A simulated round in which every client does all its work: if the intensity
        # stays put in every region until the last one is done, the loop needs only the
        # round's totals now, and the ledger's columns are made with the next batch.
        steady = sources.steady(round_start_s)
        if steady is not None:
            account = _account_whole(round_idx, round_start_s, cols, rows, entries, *steady)
            if account is not None:
                return account
    ints = np.array([cols[_ID], cols[_UP_B], cols[_DOWN_B], cols[_SAMPLES]], dtype=np.int64)
    ids, up, down, samples = ints
    flops = np.array(cols[_FLOPS_DONE], dtype=np.float64)
    if rows is None:
        e = population.entry[ids]
    elif in_cohort_order:  # reports in cohort order (simulation)
        e = rows
    else:
        e = rows_of(ids, cohort, rows)
    # One gather for every profile number the model needs (EntryTable.rates' columns).
    flops_per_s, power, up_s_per_b, down_s_per_b, radio, net_j_per_b, emb_g_per_s = entries.rates[
        e
    ].T
    cost = cost_from_rates(
        flops, up, down, flops_per_s, power, up_s_per_b, down_s_per_b, radio, net_j_per_b
    )
    if measured_s is not None:
        # A real client's own timing replaces the modelled compute time.
        has_timing = np.isfinite(measured_s)
        cost = replace(
            cost,
            compute_s=np.where(has_timing, measured_s, cost.compute_s),
            energy_compute_j=np.where(
                has_timing, power * np.nan_to_num(measured_s), cost.energy_compute_j
            ),
        )
    total_s = cost.total_s
    if deadline_s is None and dropout_prob <= 0 and k >= n and reported.count(COMPLETED) == n:
        # Nobody drops out, nobody is cut off: every client completes all its work, and the
        # round closes when the last one is done. (Draws nothing from ``rng``.)
        status = reported
        close_s = float(total_s.max()) if n else 0.0
        cut, moved_up, moved_down, active_s = cost, up, down, total_s
    else:
        dropped = rng.random(n) < dropout_prob
        drop_at = np.where(dropped, rng.random(n) * total_s, np.inf)
        reported_arr = np.array(reported, dtype=object)
        closed = close_round(total_s, drop_at, reported_arr != COMPLETED, k, deadline_s)
        cut, moved_down, moved_up = truncate(
            cost,
            closed.active_s,
            up,
            down,
            power,
            entries.radio_power_w[e],
            entries.network_kwh_per_gb[e],
        )
        status_arr = closed.status.copy()
        status_arr[reported_arr == "rejected"] = "rejected"
        # A deployed client whose task was withdrawn when the round had its k updates: the
        # straggler of the simulated path, its work until then counted.
        status_arr[(reported_arr == STRAGGLER) & (status_arr == FAILED)] = STRAGGLER
        status = status_arr.tolist()
        close_s = closed.close_s
        active_s = cut.total_s
    estimated: np.ndarray | Constant
    if measured_j is None:
        energy_compute = cut.energy_compute_j
        estimated = Constant(1, n)
    else:
        has_measure = np.isfinite(measured_j) & (np.array(status, dtype=object) == COMPLETED)
        energy_compute = np.where(has_measure, measured_j, cut.energy_compute_j)
        estimated = (~has_measure | np.array(cols[_MODELLED], dtype=bool)).astype(np.int64)
    region = entries.region_index[e]
    ci = mean_intensity(sources, region, round_start_s, round_start_s + active_s)
    energy_j = energy_compute + cut.energy_comm_j
    carbon_op = operational_carbon_g(energy_j, ci)
    carbon_emb = emb_g_per_s * active_s  # embodied_carbon_g of active_s
    table = _client_columns(
        entries,
        e,
        round_idx,
        round_start_s,
        ids,
        status,
        list(cols[_REASON]),
        samples,
        flops,
        moved_up,
        moved_down,
        cut.compute_s,
        cut.comm_s,
        energy_compute,
        cut.energy_comm_j,
        ci,
        carbon_op,
        carbon_emb,
        estimated,
    )
    return CohortAccount(
        close_s=close_s,
        status=status,
        rows=table,
        energy_j=float(energy_j.sum()),
        carbon_g=float((carbon_op + carbon_emb).sum()),
    )


def _client_columns(
    entries: EntryTable,
    e: np.ndarray,
    round_idx: int,
    start_s: float,
    ids: np.ndarray,
    status: list[str],
    reason: list[str | None],
    samples: np.ndarray,
    flops: np.ndarray,
    bytes_up: np.ndarray,
    bytes_down: np.ndarray,
    compute_s: np.ndarray,
    comm_s: np.ndarray,
    energy_compute_j: np.ndarray,
    energy_comm_j: np.ndarray,
    ci_g_per_kwh: np.ndarray,
    carbon_operational_g: np.ndarray,
    carbon_embodied_g: np.ndarray,
    estimated: np.ndarray | Constant,
) -> ColumnRows:
    """A round's ledger rows. Columns stay numpy arrays (names: indices into the table's
    names): the ledger writer packs them as raw bytes and its process makes the Python
    values, not the round loop."""
    n = len(e)
    return ColumnRows(
        {
            "round": Constant(round_idx, n),
            "client_id": ids,
            "device": Named(entries.device, e),
            "network": Named(entries.network, e),
            "region": Named(entries.region, e),
            "target": Named(entries.target, e),
            "status": status,
            "reason": reason,
            "num_samples": samples,
            "flops": flops,
            "start_s": Constant(float(start_s), n),
            "compute_s": compute_s,
            "bytes_up": bytes_up,
            "bytes_down": bytes_down,
            "comm_s": comm_s,
            "energy_compute_j": energy_compute_j,
            "energy_comm_j": energy_comm_j,
            "ci_g_per_kwh": ci_g_per_kwh,
            "carbon_operational_g": carbon_operational_g,
            "carbon_embodied_g": carbon_embodied_g,
            "estimated": estimated,
        }
    )


class _Whole(NamedTuple):
    """What a round of clients who all did all their work leaves for its ledger rows."""

    entries: EntryTable
    round_idx: int
    start_s: float
    rows: np.ndarray
    cols: list[tuple[Any, ...]]  # the reports' fields, but not their updates
    region_ci: list[float]


def _account_whole(
    round_idx: int,
    start_s: float,
    cols: list[tuple[Any, ...]],
    rows: np.ndarray,
    entries: EntryTable,
    until_s: float,
    region_ci: list[float],
) -> CohortAccount | None:
    """The round's totals, client by client in plain Python, and its ledger rows deferred
    (built by ``_build_whole``). Right after training, numpy's code is cold: its ~30 calls
    on a cohort of 100 took ~3x as long in the round loop as warm (a Python loop over the
    clients stays warm). Each client's numbers are the same operations in the same order
    as cost_from_rates and the rows' columns, so they agree to the last bit. None if a
    region's intensity changes before the last client is done."""
    rates, region_of = entries.rate_rows, entries.region_list
    energy_j = carbon_g = close_s = 0.0
    for flops, up, down, row in zip(
        cols[_FLOPS_DONE], cols[_UP_B], cols[_DOWN_B], rows.tolist(), strict=True
    ):
        flops_per_s, power, up_s_per_b, down_s_per_b, radio, net_j_per_b, emb_g_per_s = rates[row]
        compute_s = flops / flops_per_s
        up_s = up * up_s_per_b
        down_s = down * down_s_per_b
        total_s = compute_s + down_s + up_s
        client_j = power * compute_s + (radio * (up_s + down_s) + (up + down) * net_j_per_b)
        energy_j += client_j
        carbon_g += client_j / J_PER_KWH * region_ci[region_of[row]] + emb_g_per_s * total_s
        if total_s > close_s:
            close_s = total_s
    if not start_s + close_s < until_s:
        return None
    kept = [() if i == _DELTA else c for i, c in enumerate(cols)]
    deferred = DeferredRows(
        _build_whole,
        _Whole(entries, round_idx, start_s, rows, kept, region_ci),
        list(cols[_STATUS]),
    )
    return CohortAccount(
        close_s=close_s, status=deferred.status, rows=deferred, energy_j=energy_j, carbon_g=carbon_g
    )


def _build_whole(rounds: Sequence[_Whole]) -> list[ColumnRows]:
    """The ledger rows of rounds accounted by ``_account_whole``, all in one numpy pass."""
    by_table: dict[int, list[_Whole]] = {}
    for r in rounds:
        by_table.setdefault(id(r.entries), []).append(r)
    if len(by_table) > 1:  # two runs' rounds: one pass per table
        made = {
            id(r): rows
            for group in by_table.values()
            for r, rows in zip(group, _build_whole(group), strict=True)
        }
        return [made[id(r)] for r in rounds]
    entries = rounds[0].entries
    sizes = [len(r.rows) for r in rounds]
    total = sum(sizes)

    def column(field: int, dtype: type) -> np.ndarray:
        values = chain.from_iterable(r.cols[field] for r in rounds)
        return np.fromiter(values, dtype=dtype, count=total)

    ids, up, down, samples = (column(f, np.int64) for f in (_ID, _UP_B, _DOWN_B, _SAMPLES))
    flops = column(_FLOPS_DONE, np.float64)
    e = np.concatenate([r.rows for r in rounds])
    flops_per_s, power, up_s_per_b, down_s_per_b, radio, net_j_per_b, emb_g_per_s = entries.rates[
        e
    ].T
    cost = cost_from_rates(
        flops, up, down, flops_per_s, power, up_s_per_b, down_s_per_b, radio, net_j_per_b
    )
    round_of = np.repeat(np.arange(len(rounds)), sizes)
    ci = np.array([r.region_ci for r in rounds], dtype=np.float64)[
        round_of, entries.region_index[e]
    ]
    energy_j = cost.energy_compute_j + cost.energy_comm_j
    carbon_op = operational_carbon_g(energy_j, ci)
    carbon_emb = emb_g_per_s * cost.total_s
    out = []
    at = 0
    for r, n in zip(rounds, sizes, strict=True):
        s = slice(at, at + n)
        at += n
        out.append(
            _client_columns(
                entries,
                e[s],
                r.round_idx,
                r.start_s,
                ids[s],
                list(r.cols[_STATUS]),
                list(r.cols[_REASON]),
                samples[s],
                flops[s],
                up[s],
                down[s],
                cost.compute_s[s],
                cost.comm_s[s],
                cost.energy_compute_j[s],
                cost.energy_comm_j[s],
                ci[s],
                carbon_op[s],
                carbon_emb[s],
                Constant(1, n),
            )
        )
    return out


def unaccounted() -> CohortAccount:
    """The account of a round run with ``engine.accounting = false``: nothing modelled."""
    return CohortAccount(close_s=0.0, status=[], rows=[], energy_j=0.0, carbon_g=0.0)


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
