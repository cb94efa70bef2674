"""The ledger writer's columnar rows and its status check; the vectorised regional intensity
equal to the per-region sources it replaces."""

import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from greenfl.core.errors import LedgerError
from greenfl.footprint.intensity import (
    ConstantIntensity,
    HourlyProfile,
    RegionalIntensity,
    Trace,
)
from greenfl.ledger.rows import ColumnRows, Named
from greenfl.ledger.schema import CLIENT_ROUND_COLUMNS, ROUND_COLUMNS
from greenfl.ledger.writer import LedgerWriter

T0 = datetime(2026, 3, 1, 22, 30, tzinfo=timezone.utc)


def _round_row(r: int) -> dict[str, float]:
    row = dict.fromkeys(ROUND_COLUMNS, 0.0)
    row["round"], row["selected"], row["completed"], row["server_estimated"] = r, 2, 2, 1
    return row


def _client_rows(r: int, status: str = "completed") -> ColumnRows:
    n = 2
    cols: dict[str, object] = {c: np.zeros(n) for c in CLIENT_ROUND_COLUMNS}
    cols["round"] = np.full(n, r, dtype=np.int64)
    cols["client_id"] = np.arange(n, dtype=np.int64)
    for c in ("device", "network", "region", "target"):
        cols[c] = Named(("a", "b"), np.array([1, 0]))
    cols["status"] = [status] * n
    cols["reason"] = [None] * n
    cols["energy_compute_j"] = np.array([1.5 * r, 2.5 * r])
    return ColumnRows(cols)  # type: ignore[arg-type]


def test_columns_held_as_arrays_and_name_indices_are_written_as_values(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    w = LedgerWriter(path)
    for r in (1, 2):
        w.write_round(_round_row(r), _client_rows(r), {"loop": bytes([r])})
    w.close()
    conn = sqlite3.connect(path)
    got = conn.execute(
        "SELECT round, client_id, device, region, energy_compute_j, typeof(client_id), "
        "typeof(energy_compute_j) FROM client_rounds WHERE round = 2 ORDER BY client_id"
    ).fetchall()
    assert got == [
        (2, 0, "b", "b", 3.0, "integer", "real"),
        (2, 1, "a", "a", 5.0, "integer", "real"),
    ]
    assert conn.execute("SELECT round, value FROM server_state").fetchone() == (2, bytes([2]))


def test_an_unknown_status_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    w = LedgerWriter(tmp_path / "ledger.sqlite")
    with pytest.raises(LedgerError, match="'finished'"):
        w.write_round(_round_row(1), _client_rows(1, status="finished"))
    assert w.conn.execute("SELECT COUNT(*) FROM rounds").fetchone() == (0,)
    w.write_round(_round_row(1), _client_rows(1))  # the writer still works
    assert w.conn.execute("SELECT COUNT(*) FROM client_rounds").fetchone() == (2,)
    w.close()


def _sources() -> list:
    hourly = tuple(float(100 + 17 * h) for h in range(24))
    return [
        HourlyProfile(hourly, 0.0, T0),
        ConstantIntensity(321.0),
        HourlyProfile(tuple(reversed(hourly)), 5.5, T0),
        HourlyProfile(hourly, -8.0, T0),
    ]


def test_regional_intensity_equals_each_region_s_own_source() -> None:
    rng = np.random.default_rng(0)
    sources = _sources()
    regional = RegionalIntensity(sources)
    region = rng.integers(0, len(sources), 500)
    t0 = rng.uniform(0, 3 * 86_400, 500)
    t1 = t0 + np.where(rng.random(500) < 0.2, 0.0, rng.uniform(0, 20_000, 500))  # some empty
    got = regional.mean(region, t0, t1)
    for r, src in enumerate(sources):
        mask = region == r
        np.testing.assert_array_equal(got[mask], src.mean(t0[mask], t1[mask]))
    # 22:30 UTC to 01:30 UTC in region 0 (UTC): 1.5 h at 474, 1 h at 100, 0.5 h at 117
    expect = (0.5 * 474 + 1 * 491 + 1 * 100 + 0.5 * 117) / 3
    assert regional.mean(np.array([0]), 0.0, 3 * 3600.0)[0] == pytest.approx(expect)
    assert regional.mean(np.array([1]), 0.0, 10.0)[0] == 321.0


def test_regional_intensity_with_a_trace_falls_back_to_each_source(tmp_path: Path) -> None:
    csv = tmp_path / "trace.csv"
    csv.write_text("timestamp,ci\n2026-03-01T22:00:00Z,200\n2026-03-01T23:00:00Z,600\n")
    sources = [*_sources(), Trace.from_csv(csv, T0)]
    regional = RegionalIntensity(sources)
    region = np.array([4, 0, 4, 1])
    got = regional.mean(region, np.zeros(4), np.full(4, 3600.0))
    # trace: 30 min at 200 (22:30-23:00), 30 min at 600
    assert got[0] == pytest.approx(400.0) and got[2] == pytest.approx(400.0)
    assert got[3] == 321.0
    np.testing.assert_array_equal(got[1:2], sources[0].mean(np.zeros(1), np.full(1, 3600.0)))


def test_one_start_for_a_cohort_equals_the_exact_integral_per_client() -> None:
    # A round's clients all start at the round's start: the per-region hour lookup (cached
    # while the clock stays in that hour) must equal the integral taken client by client,
    # also when some interval crosses an hour boundary (then the integral is taken).
    rng = np.random.default_rng(1)
    sources = _sources()
    regional = RegionalIntensity(sources)
    region = rng.integers(0, len(sources), 300)
    for t0 in [0.0, 1799.0, 3599.9, 5.5 * 3600 - 10, 22 * 3600 + 30, 3 * 86_400 + 1234.5]:
        for longest_s in [0.0, 5.0, 60.0, 7200.0]:
            t1 = t0 + rng.uniform(0, longest_s, 300)
            got = regional.mean(region, t0, t1)
            exact = RegionalIntensity(sources).mean(region, np.full(300, t0), t1)
            # (the integral over a few seconds loses ~1e-10 to cancellation; the hour's value
            # is exact)
            np.testing.assert_allclose(got, exact, rtol=1e-8)
            again = regional.mean(region, t0, t1)  # from the cached hour
            np.testing.assert_array_equal(again, got)


def test_one_region_s_mean_from_the_regional_sources(tmp_path: Path) -> None:
    # The loop asks the server's region alone; with a trace among the sources (no
    # vectorised stack) the region's own source answers.
    csv = tmp_path / "trace.csv"
    csv.write_text("timestamp,ci\n2026-03-01T22:00:00Z,200\n2026-03-01T23:00:00Z,600\n")
    for sources in (_sources(), [*_sources(), Trace.from_csv(csv, T0)]):
        regional = RegionalIntensity(sources)
        for r, src in enumerate(sources):
            got = float(regional.mean(r, 100.0, 4000.0))
            assert got == pytest.approx(float(src.mean(np.array([100.0]), np.array([4000.0]))[0]))
