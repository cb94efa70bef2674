"""Turning a cohort's reports into time, energy and carbon: the footprint model applied to
the round's clients, with drop-outs, the deadline and over-selection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from greenfl.accounting.columns import (
    AT_DISPUTED,
    AT_DOWN_B,
    AT_FLOPS_DONE,
    AT_ID,
    AT_MEASURED_J,
    AT_MEASURED_S,
    AT_MODELLED,
    AT_REASON,
    AT_REPORTED_J,
    AT_SAMPLES,
    AT_SERVER_J,
    AT_STATUS,
    AT_UP_B,
    CohortAccount,
    client_columns,
)
from greenfl.accounting.entries import EntryTable
from greenfl.accounting.sources import mean_intensity
from greenfl.accounting.whole import account_whole
from greenfl.core.messages import ClientReport
from greenfl.fleet.population import Population
from greenfl.footprint.intensity import (
    CarbonIntensity,
    RegionalIntensity,
)
from greenfl.footprint.model import (
    client_operational_g,
    cost_from_rates,
    truncate,
)
from greenfl.ledger.rows import Constant
from greenfl.scheduling.deadline import COMPLETED, FAILED, PARTIAL, STRAGGLER, close_round

DISPUTED = "disputed"  # greenfl.ledger.schema.STATUSES


def _measured(values: tuple[float | None, ...]) -> np.ndarray | None:
    """A column of optional measurements as floats (NaN where missing); None if none."""
    if values.count(None) == len(values):
        return None
    return np.array(values, dtype=np.float64)


def _optional(values: tuple[float | None, ...], n: int) -> list[float | None] | Constant:
    """A column of optional figures (deployment's reported and estimated energy)."""
    if values.count(None) == len(values):
        return Constant(None, n)
    return [None if v is None else float(v) for v in values]


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
    partial_ids: frozenset[int] = frozenset(),
    starts_s: np.ndarray | None = None,
    drop_at_s: np.ndarray | None = None,
) -> CohortAccount:
    """``rows``: each report's row in ``entries`` where it is not the client's population
    entry (e.g. a table of execution targets, one row per entry and target); with
    ``cohort``, the rows of the clients asked, in cohort order, looked up by client id.
    ``partial_ids``: clients asked for fewer steps than the round's (partial work): done by
    the deadline, they are ``partial``, not ``completed``. ``starts_s``: each report's own
    start (asynchronous FL: every update has its own interval); None: all start at
    ``round_start_s``. ``drop_at_s``: when each client drops out, from its start (inf:
    it does not), drawn by the caller instead of from ``dropout_prob``."""
    n = len(reports)
    cols = list(zip(*reports, strict=True)) if n else [()] * len(ClientReport._fields)
    measured_s, measured_j = _measured(cols[AT_MEASURED_S]), _measured(cols[AT_MEASURED_J])
    reported: list[str] = list(cols[AT_STATUS])
    in_cohort_order = rows is not None and (cohort is None or list(cols[AT_ID]) == cohort.tolist())
    if (
        in_cohort_order
        and measured_s is None
        and measured_j is None
        and deadline_s is None
        and dropout_prob <= 0
        and k >= n
        and reported.count(COMPLETED) == n
        and isinstance(sources, RegionalIntensity)
        and starts_s is None
        and drop_at_s is None
    ):
        # A simulated round in which every client does all its work: if the intensity
        # stays put in every region until the last one is done, the loop needs only the
        # round's totals now, and the ledger's columns are made with the next batch.
        steady = sources.steady(round_start_s)
        if steady is not None:
            account = account_whole(round_idx, round_start_s, cols, rows, entries, *steady)
            if account is not None:
                return account
    ints = np.array([cols[AT_ID], cols[AT_UP_B], cols[AT_DOWN_B], cols[AT_SAMPLES]], dtype=np.int64)
    ids, up, down, samples = ints
    flops = np.array(cols[AT_FLOPS_DONE], dtype=np.float64)
    if rows is None:
        e = population.entry[ids]
    elif in_cohort_order:  # reports in cohort order (simulation)
        e = rows
    else:
        e = rows_of(ids, cohort, rows)
    # One gather for every profile number the model needs (EntryTable.rates' columns).
    (
        flops_per_s,
        power,
        up_s_per_b,
        down_s_per_b,
        radio,
        net_j_per_b,
        emb_g_per_s,
        tail_s,
        tail_w,
        setup_s,
        rtt_s,
        wall_per_j,
        access,
    ) = entries.rates[e].T
    cost = cost_from_rates(
        flops,
        up,
        down,
        flops_per_s,
        power,
        up_s_per_b,
        down_s_per_b,
        radio,
        net_j_per_b,
        tail_s,
        tail_w,
        setup_s,
        rtt_s,
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
    no_drops = dropout_prob <= 0 and (drop_at_s is None or not np.isfinite(drop_at_s).any())
    if deadline_s is None and no_drops and k >= n and reported.count(COMPLETED) == n:
        # Nobody drops out, nobody is cut off: every client completes all its work, and the
        # round closes when the last one is done. (Draws nothing from ``rng``.)
        status = reported
        close_s = float(total_s.max()) if n else 0.0
        cut, moved_up, moved_down, active_s = cost, up, down, total_s
    else:
        if drop_at_s is not None:
            drop_at = np.asarray(drop_at_s, dtype=np.float64)
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
            tail_s,
            tail_w,
        )
        status_arr = closed.status.copy()
        status_arr[reported_arr == "rejected"] = "rejected"
        # A deployed client whose task was withdrawn when the round had its k updates: the
        # straggler of the simulated path, its work until then counted.
        status_arr[(reported_arr == STRAGGLER) & (status_arr == FAILED)] = STRAGGLER
        if partial_ids:
            asked_less = np.isin(ids, np.fromiter(partial_ids, dtype=np.int64))
            status_arr[asked_less & (status_arr == COMPLETED)] = PARTIAL
        status = status_arr.tolist()
        close_s = closed.close_s
        active_s = cut.total_s
    estimated: np.ndarray | Constant
    if measured_j is None:
        energy_compute = cut.energy_compute_j
        estimated = Constant(1, n)
    else:
        has_measure = np.isfinite(measured_j) & np.isin(status, (COMPLETED, PARTIAL))
        energy_compute = np.where(has_measure, measured_j, cut.energy_compute_j)
        estimated = (~has_measure | np.array(cols[AT_MODELLED], dtype=bool)).astype(np.int64)
    if any(cols[AT_DISPUTED]):
        # A deployed client's report the server disputes (issue 29): aggregated, its energy
        # the server's estimate (measured_energy_j holds it), its row marked as such.
        disputed = np.array(cols[AT_DISPUTED], dtype=bool) & np.isin(status, (COMPLETED, PARTIAL))
        status = np.where(disputed, DISPUTED, np.array(status, dtype=object)).tolist()
    region = entries.region_index[e]
    t0_s = round_start_s if starts_s is None else np.asarray(starts_s, dtype=np.float64)
    ci = mean_intensity(sources, region, t0_s, t0_s + active_s)
    server_ci = mean_intensity(
        sources, np.full(n, entries.server_region, dtype=np.int64), t0_s, t0_s + active_s
    )
    energy_j = energy_compute + cut.energy_comm_j
    wall_j = (energy_j - cut.energy_network_j) * wall_per_j
    carbon_op = client_operational_g(wall_j, cut.energy_network_j, access, ci, server_ci)
    carbon_emb = emb_g_per_s * active_s  # embodied_carbon_g of active_s
    table = client_columns(
        entries,
        e,
        round_idx,
        t0_s,
        ids,
        status,
        list(cols[AT_REASON]),
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
        wall_j,
        np.asarray(cut.energy_network_j, dtype=np.float64) + np.zeros(n),
        _optional(cols[AT_REPORTED_J], n),
        _optional(cols[AT_SERVER_J], n),
        sources.row_sources() if isinstance(sources, RegionalIntensity) else None,
    )
    return CohortAccount(
        close_s=close_s,
        status=status,
        rows=table,
        energy_j=float(energy_j.sum()),
        carbon_g=float((carbon_op + carbon_emb).sum()),
    )


def unaccounted() -> CohortAccount:
    """The account of a round run with ``engine.accounting = false``: nothing modelled."""
    return CohortAccount(close_s=0.0, status=[], rows=[], energy_j=0.0, carbon_g=0.0)
