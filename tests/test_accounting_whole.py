"""A round where every client does all its work: totals client by client in the loop, the
ledger's columns later, many rounds at once. Both must equal the vectorised accounting."""

from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from greenfl.accounting.cohort import account_cohort
from greenfl.accounting.columns import CohortAccount
from greenfl.accounting.entries import EntryTable
from greenfl.accounting.sources import GridChoice, intensity_sources
from greenfl.core.messages import ClientReport
from greenfl.fleet.catalog import load_fleet
from greenfl.fleet.population import Population
from greenfl.footprint.intensity import ConstantIntensity, RegionalIntensity, Trace
from greenfl.ledger.rows import ColumnRows, DeferredRows, built

START = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)
World = tuple[Population, EntryTable, RegionalIntensity]


@pytest.fixture(scope="module")
def world() -> World:
    fleet = load_fleet()
    assert len(fleet.regions) > 1  # clients in several regions, each its own hourly profile
    pop = Population.assign(fleet, np.full(500, 20), seed=3)
    sources = intensity_sources(fleet, GridChoice(), START)
    assert sources.steady(0.0) is not None
    return pop, EntryTable.build(fleet), sources


def _reports(rng: np.random.Generator, ids: np.ndarray) -> list[ClientReport]:
    return [
        ClientReport(int(c), "completed", None, None, int(s), float(s) * 3.1e7, 0.5, int(u), 4410)
        for c, s, u in zip(
            ids, rng.integers(1, 60, len(ids)), rng.integers(900, 9000, len(ids)), strict=True
        )
    ]


def _account(
    world: World, round_idx: int, start_s: float
) -> tuple[list[ClientReport], CohortAccount]:
    pop, table, sources = world
    rng = np.random.default_rng(round_idx)
    cohort = rng.choice(pop.size, 40, replace=False).astype(np.int64)
    reports = _reports(rng, cohort)
    acc = account_cohort(
        round_idx, start_s, reports, pop, table, sources, k=40, deadline_s=None,
        dropout_prob=0.0, rng=rng, rows=pop.entry[cohort], cohort=cohort,
    )  # fmt: skip
    return reports, acc


def _vectorised(
    world: World,
    reports: list[ClientReport],
    round_idx: int,
    start_s: float,
) -> CohortAccount:
    pop, table, sources = world
    # A plain sequence of sources is not a RegionalIntensity: the vectorised path.
    acc = account_cohort(
        round_idx, start_s, reports, pop, table, list(sources), k=len(reports),
        deadline_s=None, dropout_prob=0.0, rng=np.random.default_rng(0),
    )  # fmt: skip
    assert isinstance(acc.rows, ColumnRows)
    return acc


def test_rows_built_in_one_batch_equal_the_vectorised_accounting(world: World) -> None:
    starts = [60.0, 95.5, 130.25]  # all within the same hour in every region
    accounts = [_account(world, i + 1, t) for i, t in enumerate(starts)]
    deferred = [acc.rows for _, acc in accounts]
    assert all(isinstance(rows, DeferredRows) for rows in deferred)

    calls = []
    build = deferred[0].build

    def counting(payloads: Sequence[Any]) -> list[ColumnRows]:
        calls.append(len(payloads))
        return build(payloads)

    for rows in deferred:
        rows.build = counting
    # The writer's check reads the statuses: that builds nothing.
    assert deferred[1].column("status") == ["completed"] * 40 and calls == []
    got = built(deferred)
    assert calls == [3]  # the three rounds in one pass

    for (reports, acc), rows, (i, t) in zip(accounts, got, enumerate(starts), strict=True):
        ref = _vectorised(world, reports, i + 1, t)
        assert list(rows) == list(ref.rows)  # every column, to the last bit
        assert acc.close_s == ref.close_s
        assert acc.status == ref.status
        # The totals: the same numbers per client, summed in another order.
        assert acc.energy_j == pytest.approx(ref.energy_j, rel=1e-12)
        assert acc.carbon_g == pytest.approx(ref.carbon_g, rel=1e-12)
        energy = sum(r["energy_compute_j"] + r["energy_comm_j"] for r in rows)
        assert acc.energy_j == pytest.approx(energy, rel=1e-12)
    # Read on its own (the inline writer), a round builds its rows itself.
    reports, acc = _account(world, 9, 61.0)
    assert list(acc.rows) == list(_vectorised(world, reports, 9, 61.0).rows)


def test_a_round_across_an_hour_boundary_is_accounted_vectorised(world: World) -> None:
    pop, table, sources = world
    until_s, _ = sources.steady(100.0)
    # Starts a hair before a region's hour ends: its clients' intensity is a mean across
    # two hours, which only the vectorised pass computes.
    reports, acc = _account(world, 4, until_s - 1e-3)
    assert isinstance(acc.rows, ColumnRows)
    ref = _vectorised(world, reports, 4, until_s - 1e-3)
    assert list(acc.rows) == list(ref.rows) and acc.energy_j == ref.energy_j


def test_steady_intensity_is_each_regions_mean_within_its_window(world: World) -> None:
    _, _, sources = world
    until_s, values = sources.steady(1000.0)
    assert until_s > 1000.0
    regions = np.arange(len(sources))
    mean = sources.mean(regions, 1000.0, np.full(len(sources), until_s - 1.0))
    assert mean.tolist() == pytest.approx(values, rel=1e-12)
    # Past the window, some region is in another hour.
    later = sources.steady(until_s)
    assert later is not None and later[0] > until_s


def test_no_steady_window_without_hourly_or_constant_sources(tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text("timestamp,ci_g_per_kwh\n2026-06-01T09:00:00Z,300\n")
    mixed = RegionalIntensity([ConstantIntensity(100.0), Trace.from_csv(trace, START)])
    assert mixed.steady(0.0) is None


def test_rounds_of_two_tables_build_each_with_its_own(world: World) -> None:
    pop, table, sources = world
    other = EntryTable.build(pop.fleet)  # equal numbers, another object: another run's table
    _, first = _account(world, 1, 60.0)
    reports, second = _account((pop, other, sources), 2, 70.0)
    assert isinstance(first.rows, DeferredRows) and isinstance(second.rows, DeferredRows)
    got = built([first.rows, second.rows])
    assert got[1].columns["device"].names is other.device
    assert list(got[1]) == list(_vectorised((pop, other, sources), reports, 2, 70.0).rows)
