"""The steady fast path: a simulated round in which every client does all its work and no
region's intensity changes before the last one is done. The loop gets the totals at once;
the ledger columns are built many rounds at a time when the rounds are handed over."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import Any, NamedTuple

import numpy as np

from greenfl.accounting.columns import (
    AT_DELTA,
    AT_DOWN_B,
    AT_FLOPS_DONE,
    AT_ID,
    AT_REASON,
    AT_SAMPLES,
    AT_STATUS,
    AT_UP_B,
    CohortAccount,
    client_columns,
)
from greenfl.accounting.entries import EntryTable
from greenfl.core.units import J_PER_KWH
from greenfl.footprint.model import (
    client_operational_g,
    cost_from_rates,
)
from greenfl.ledger.rows import ColumnRows, Constant, DeferredRows


class WholeRound(NamedTuple):
    """What a round of clients who all did all their work leaves for its ledger rows."""

    entries: EntryTable
    round_idx: int
    start_s: float
    rows: np.ndarray
    cols: list[tuple[Any, ...]]  # the reports' fields, but not their updates
    region_ci: list[float]


def account_whole(
    round_idx: int,
    start_s: float,
    cols: list[tuple[Any, ...]],
    rows: np.ndarray,
    entries: EntryTable,
    until_s: float,
    region_ci: list[float],
) -> CohortAccount | None:
    """The round's totals, client by client in plain Python, and its ledger rows deferred
    (built by ``build_whole``). Right after training, numpy's code is cold: its ~30 calls
    on a cohort of 100 took ~3x as long in the round loop as warm (a Python loop over the
    clients stays warm). Each client's numbers are the same operations in the same order
    as cost_from_rates and the rows' columns, so they agree to the last bit. None if a
    region's intensity changes before the last client is done."""
    rates, region_of = entries.rate_rows, entries.region_list
    server_ci = region_ci[entries.server_region]
    energy_j = carbon_g = close_s = 0.0
    for flops, up, down, row in zip(
        cols[AT_FLOPS_DONE], cols[AT_UP_B], cols[AT_DOWN_B], rows.tolist(), strict=True
    ):
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
        ) = rates[row]
        compute_s = flops / flops_per_s
        up_s = up * up_s_per_b + rtt_s * (up > 0)
        down_s = down * down_s_per_b + (setup_s + rtt_s) * (down > 0)
        total_s = compute_s + down_s + up_s
        tail_j = tail_w * (min(tail_s, compute_s) * (down > 0) + tail_s * (up > 0))
        net_j = (up + down) * net_j_per_b
        client_j = power * compute_s + ((radio * (up_s + down_s) + net_j) + tail_j)
        energy_j += client_j
        wall_j = (client_j - net_j) * wall_per_j
        access_j = net_j * access
        carbon_g += (
            (wall_j + access_j) / J_PER_KWH * region_ci[region_of[row]]
            + (net_j - access_j) / J_PER_KWH * server_ci
            + emb_g_per_s * total_s
        )
        if total_s > close_s:
            close_s = total_s
    if not start_s + close_s < until_s:
        return None
    kept = [() if i == AT_DELTA else c for i, c in enumerate(cols)]
    deferred = DeferredRows(
        build_whole,
        WholeRound(entries, round_idx, start_s, rows, kept, region_ci),
        list(cols[AT_STATUS]),
    )
    return CohortAccount(
        close_s=close_s, status=deferred.status, rows=deferred, energy_j=energy_j, carbon_g=carbon_g
    )


def build_whole(rounds: Sequence[WholeRound]) -> list[ColumnRows]:
    """The ledger rows of rounds accounted by ``account_whole``, all in one numpy pass."""
    by_table: dict[int, list[WholeRound]] = {}
    for r in rounds:
        by_table.setdefault(id(r.entries), []).append(r)
    if len(by_table) > 1:  # two runs' rounds: one pass per table
        made = {
            id(r): rows
            for group in by_table.values()
            for r, rows in zip(group, build_whole(group), strict=True)
        }
        return [made[id(r)] for r in rounds]
    entries = rounds[0].entries
    sizes = [len(r.rows) for r in rounds]
    total = sum(sizes)

    def column(field: int, dtype: type) -> np.ndarray:
        values = chain.from_iterable(r.cols[field] for r in rounds)
        return np.fromiter(values, dtype=dtype, count=total)

    ids, up, down, samples = (column(f, np.int64) for f in (AT_ID, AT_UP_B, AT_DOWN_B, AT_SAMPLES))
    flops = column(AT_FLOPS_DONE, np.float64)
    e = np.concatenate([r.rows for r in rounds])
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
    round_of = np.repeat(np.arange(len(rounds)), sizes)
    region_ci = np.array([r.region_ci for r in rounds], dtype=np.float64)
    ci = region_ci[round_of, entries.region_index[e]]
    server_ci = region_ci[round_of, entries.server_region]
    energy_j = cost.energy_compute_j + cost.energy_comm_j
    network_j = np.asarray(cost.energy_network_j, dtype=np.float64)
    wall_j = (energy_j - network_j) * wall_per_j
    carbon_op = client_operational_g(wall_j, network_j, access, ci, server_ci)
    carbon_emb = emb_g_per_s * cost.total_s
    out = []
    at = 0
    for r, n in zip(rounds, sizes, strict=True):
        s = slice(at, at + n)
        at += n
        out.append(
            client_columns(
                entries,
                e[s],
                r.round_idx,
                r.start_s,
                ids[s],
                list(r.cols[AT_STATUS]),
                list(r.cols[AT_REASON]),
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
                wall_j[s],
                network_j[s],
            )
        )
    return out
