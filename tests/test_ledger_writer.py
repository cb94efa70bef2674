"""The ledger's writer thread: rounds committed in order, errors surfaced on the loop's
thread, nothing lost at close; and the vectorised regional intensity equal to the
per-region sources it replaces."""

import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from greenfl.engine.accounting import ColumnRows, Named
from greenfl.engine.build import build_loop
from greenfl.footprint.intensity import (
    ConstantIntensity,
    HourlyProfile,
    RegionalIntensity,
    Trace,
)
from greenfl.ledger.schema import CLIENT_ROUND_COLUMNS, ROUND_COLUMNS
from greenfl.ledger.worker import OrderedWorker, WorkerFailed
from greenfl.ledger.writer import LedgerError, LedgerWriter

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


def test_worker_runs_jobs_in_order_on_its_own_thread() -> None:
    done: list[tuple[int, str]] = []
    w = OrderedWorker("test-worker")
    for i in range(20):
        w.submit(lambda i=i: done.append((i, threading.current_thread().name)))
    w.flush()
    assert [i for i, _ in done] == list(range(20))
    assert {name for _, name in done} == {"test-worker"}
    w.close()
    with pytest.raises(WorkerFailed, match="closed"):
        w.submit(lambda: None)


def test_worker_error_surfaces_once_then_refuses_and_skips_later_jobs() -> None:
    ran: list[int] = []
    w = OrderedWorker("test-worker")

    def boom() -> None:
        raise OSError("disk full")

    w.submit(lambda: ran.append(1))
    w.submit(boom)
    w.submit(lambda: ran.append(3))  # after the failure: must not run
    with pytest.raises(OSError, match="disk full"):
        w.flush()
    assert ran == [1]
    with pytest.raises(WorkerFailed, match="disk full"):
        w.submit(lambda: ran.append(4))
    w.close()
    assert ran == [1]


def test_background_rounds_are_committed_by_flush_and_close(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    w = LedgerWriter(path, background=True)
    for r in range(1, 6):
        w.write_round(_round_row(r), _client_rows(r), {"loop": bytes([r])})
    w.close()  # no flush before: close must still commit every queued round
    conn = sqlite3.connect(path)
    rounds = [r for (r,) in conn.execute("SELECT round FROM rounds ORDER BY round")]
    assert rounds == [1, 2, 3, 4, 5]
    got = conn.execute(
        "SELECT round, client_id, device, energy_compute_j FROM client_rounds "
        "WHERE round = 4 ORDER BY client_id"
    ).fetchall()
    assert got == [(4, 0, "b", 6.0), (4, 1, "a", 10.0)]
    assert conn.execute("SELECT round, value FROM server_state").fetchone() == (5, bytes([5]))


def test_reads_wait_for_the_writer(tmp_path: Path) -> None:
    w = LedgerWriter(tmp_path / "ledger.sqlite", background=True)
    for r in range(1, 4):
        w.write_round(_round_row(r), _client_rows(r))
    # conn waits for the queue: no read sees a round missing
    assert w.conn.execute("SELECT COUNT(*) FROM client_rounds").fetchone() == (6,)
    w.close()


def test_a_failed_round_surfaces_and_nothing_after_it_is_written(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    w = LedgerWriter(path, background=True)
    w.write_round(_round_row(1), _client_rows(1))
    w.write_round(_round_row(1), _client_rows(1))  # the same round again: a primary-key clash
    w.write_round(_round_row(2), _client_rows(2))
    with pytest.raises(sqlite3.IntegrityError):
        w.flush()
    with pytest.raises(WorkerFailed):
        w.write_round(_round_row(3), _client_rows(3))
    with pytest.raises(WorkerFailed):
        w.close()
    conn = sqlite3.connect(path)
    assert [r for (r,) in conn.execute("SELECT round FROM rounds")] == [1]
    assert conn.execute("SELECT COUNT(*) FROM client_rounds").fetchone() == (2,)


@pytest.mark.parametrize("background", [False, True])
def test_an_unknown_status_is_refused_before_anything_is_written(
    tmp_path: Path, background: bool
) -> None:
    w = LedgerWriter(tmp_path / "ledger.sqlite", background=background)
    with pytest.raises(LedgerError, match="'finished'"):
        w.write_round(_round_row(1), _client_rows(1, status="finished"))
    w.write_round(_round_row(1), _client_rows(1))  # the writer still works
    assert w.conn.execute("SELECT COUNT(*) FROM rounds").fetchone() == (1,)
    w.close()


def test_background_and_inline_ledgers_hold_the_same_rows(tmp_path: Path, tiny_config) -> None:  # noqa: ANN001
    import greenfl.engine.build as build_module

    tables = {}
    for background in (False, True):
        out = tmp_path / str(background)

        def make(path: Path, background: bool = False, bg: bool = background) -> LedgerWriter:
            return LedgerWriter(path, background=bg)

        original = build_module.LedgerWriter
        build_module.LedgerWriter = make  # type: ignore[assignment,misc]
        try:
            loop = build_loop(tiny_config, out)
        finally:
            build_module.LedgerWriter = original  # type: ignore[misc]
        assert (loop.ledger._worker is not None) == background
        loop.run()
        # start_s and what follows from it (intensity, operational carbon) carry the measured
        # server time of earlier rounds, which differs from run to run
        same = [c for c in CLIENT_ROUND_COLUMNS if c not in _TIMED]
        tables[background] = loop.ledger.conn.execute(
            f"SELECT {', '.join(same)} FROM client_rounds ORDER BY round, client_id"
        ).fetchall()
        loop.ledger.close()
    assert len(tables[True]) == 15
    assert tables[True] == tables[False]


_TIMED = ("start_s", "ci_g_per_kwh", "carbon_operational_g")


def test_simulated_runs_write_in_the_background(tmp_path: Path, tiny_config) -> None:  # noqa: ANN001
    loop = build_loop(tiny_config, tmp_path / "run")
    assert loop.ledger._worker is not None
    loop.ledger.close()


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
