"""The report of an asynchronous run (issue 30): the staleness histogram (all updates and
the aggregated ones, with mean and max), "server step" where a synchronous report says
"round", and nothing of it in a synchronous run's report.

A hand-written ledger (every count known) and two real runs of the digits MLP (a few
seconds each), whose counts are re-counted here row by row from their ledgers."""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import _client, _round, write_hand_ledger
from rich.console import Console

from greenfl.api import run
from greenfl.config import build_config
from greenfl.fleet.catalog import load_fleet
from greenfl.ledger.summary import summarize
from greenfl.ledger.writer import LedgerWriter
from greenfl.report.run_data import open_run
from greenfl.report.run_mode import is_async_run
from greenfl.report.run_report import render_run_report
from greenfl.report.staleness import StalenessHistogram, staleness_bins, staleness_histogram
from greenfl.report.terminal import summary_table

# The statuses whose update was aggregated, written out here rather than imported from
# greenfl.ledger.schema, so a change there shows up as a failing count.
AGGREGATED_STATUSES = {"completed", "partial", "disputed"}

# (server step, client, status, model version it trained from); staleness is
# (step - 1) - version: the steps applied after its base, before the step that took it.
HAND_UPDATES = [
    (1, 0, "completed", 0),  # staleness 0
    (1, 1, "completed", 0),  # 0
    (2, 2, "completed", 0),  # 1
    (2, 3, "completed", 1),  # 0
    (2, 4, "dropped", 0),  # 1
    (3, 0, "completed", 1),  # 1
    (3, 1, "rejected", 1),  # 1
    (3, 5, "dropped", 0),  # 2
]
# Counted by hand from the list above.
HAND_ALL = {0: 3, 1: 4, 2: 1}
HAND_AGGREGATED = {0: 3, 1: 2}
HAND_MEAN_ALL = (0 * 3 + 1 * 4 + 2 * 1) / 8  # 0.75
HAND_MEAN_AGGREGATED = (0 * 3 + 1 * 2) / 5  # 0.4


def write_async_ledger(out: Path, mode: str = "async", staleness: bool = True) -> None:
    """Three server steps of HAND_UPDATES. ``mode``: the engine.mode the config records;
    ``staleness``: False drops the model_version and staleness columns afterwards, as a
    ledger written before schema 5 has none."""
    raw: dict[str, Any] = {
        "data": {"num_clients": 8},
        "train": {"rounds": 3, "clients_per_round": 2},
        "engine": {"mode": mode},
    }
    if mode == "async":
        raw |= {"strategy": {"name": "fedbuff"}, "async": {"concurrency": 4, "buffer_size": 2}}
    cfg = build_config(raw)
    out.mkdir(parents=True, exist_ok=True)
    w = LedgerWriter(out / "ledger.sqlite")
    w.begin_run(cfg.to_dict(), load_fleet().to_dict(), "test")
    w.set_meta("initial_accuracy", "0.1")
    for step in (1, 2, 3):
        rows = [
            _client(step, cid, "FR", "laptop", status, model_version=v, staleness=(step - 1) - v)
            for s, cid, status, v in HAND_UPDATES
            if s == step
        ]
        w.write_round(_round(step, step - 1.0, float(step), 0.2 * step, 1.0, 0.1), rows)
    w.finish("completed", "completed 3 rounds")
    summary = summarize(w.conn, None, 1.0)
    w.close()
    (out / "summary.json").write_text(json.dumps(summary))
    if not staleness:
        conn = sqlite3.connect(out / "ledger.sqlite")
        conn.execute("ALTER TABLE client_rounds DROP COLUMN staleness")
        conn.execute("ALTER TABLE client_rounds DROP COLUMN model_version")
        conn.commit()
        conn.close()


def section(page: str, sid: str) -> str | None:
    m = re.search(rf'<section id="{sid}">(.*?)</section>', page, re.S)
    return None if m is None else m.group(1)


def table_counts(sec: str) -> tuple[dict[int, int], dict[int, int]]:
    """(all, aggregated) per staleness value, as the section's exact table states them."""
    all_updates: dict[int, int] = {}
    aggregated: dict[int, int] = {}
    for v, n, done in re.findall(
        r"data-staleness='(\d+)' data-all='(\d+)' data-aggregated='(\d+)'", sec
    ):
        all_updates[int(v)] = int(n)
        if int(done):
            aggregated[int(v)] = int(done)
    return all_updates, aggregated


def metric(sec: str, key: str) -> str:
    m = re.search(rf"data-metric='{key}' data-value='([^']*)'", sec)
    assert m is not None, key
    return m.group(1)


def recount(ledger: Path) -> tuple[Counter[int], Counter[int]]:
    """The ledger's updates per staleness, counted row by row in Python."""
    conn = sqlite3.connect(ledger)
    rows = conn.execute("SELECT round, model_version, staleness, status FROM client_rounds")
    all_updates: Counter[int] = Counter()
    aggregated: Counter[int] = Counter()
    for rnd, version, stale, status in rows.fetchall():
        assert stale == (rnd - 1) - version  # the column's definition (issue 30)
        all_updates[stale] += 1
        if status in AGGREGATED_STATUSES:
            aggregated[stale] += 1
    conn.close()
    return all_updates, aggregated


# ---- the hand-written ledger -------------------------------------------------------------


def test_histogram_counts_the_hand_ledger(tmp_path: Path) -> None:
    write_async_ledger(tmp_path)
    with open_run(tmp_path) as r:
        h = staleness_histogram(r.conn)
        assert r.asynchronous and r.step == "server step"
    assert h is not None
    assert h.all_updates == HAND_ALL
    assert h.aggregated == HAND_AGGREGATED
    assert h.unrecorded == 0
    assert h.total(aggregated_only=False) == 8 and h.total(aggregated_only=True) == 5
    assert h.mean(aggregated_only=False) == pytest.approx(HAND_MEAN_ALL)
    assert h.mean(aggregated_only=True) == pytest.approx(HAND_MEAN_AGGREGATED)
    assert h.max(aggregated_only=False) == 2 and h.max(aggregated_only=True) == 1


def test_report_section_of_the_hand_ledger(tmp_path: Path) -> None:
    write_async_ledger(tmp_path)
    with open_run(tmp_path) as r:
        page = render_run_report(r, ())
    sec = section(page, "staleness")
    assert sec is not None
    assert table_counts(sec) == (HAND_ALL, HAND_AGGREGATED)
    assert metric(sec, "staleness_all_count") == "8"
    assert metric(sec, "staleness_aggregated_count") == "5"
    assert float(metric(sec, "staleness_all_mean")) == pytest.approx(0.75)
    assert float(metric(sec, "staleness_aggregated_mean")) == pytest.approx(0.4)
    assert metric(sec, "staleness_all_max") == "2"
    assert metric(sec, "staleness_aggregated_max") == "1"
    assert 'data-plot="staleness"' in sec
    # the bars carry their counts (all updates per value: 3, 4, 1)
    svg = re.search(r'<svg[^>]*data-plot="staleness".*?</svg>', sec, re.S)
    assert svg is not None
    labels = re.findall(r"<tspan[^>]*>(\d+)</tspan></text>", svg.group(0))
    assert labels[-3:] == ["3", "4", "1"]
    assert "fedbuff" in sec and "buffer of 2 updates" in sec
    # a round of the ledger is a server step everywhere else on the page
    rounds = section(page, "breakdown")
    assert rounds is not None and ">server step</tspan>" in rounds
    assert re.search(r'class="label">server steps</div><div class="value" '
                     r'data-metric="rounds_completed"', page)  # fmt: skip
    assert "after each server step" in page


def test_staleness_marks_a_run_async_whatever_its_config_says(tmp_path: Path) -> None:
    """A stale update is only written by the async loop: it makes the run async even where
    the recorded config says sync (an edited or older config)."""
    write_async_ledger(tmp_path, mode="sync")
    with open_run(tmp_path) as r:
        assert is_async_run(r.config, r.conn)
        assert section(render_run_report(r, ()), "staleness") is not None


def test_async_ledger_without_staleness_says_so(tmp_path: Path) -> None:
    write_async_ledger(tmp_path, staleness=False)
    with open_run(tmp_path) as r:
        assert staleness_histogram(r.conn) is None
        sec = section(render_run_report(r, ()), "staleness")
    assert sec is not None and "data-recorded='no'" in sec
    assert "data-plot" not in sec


def test_null_staleness_rows_are_counted_apart(tmp_path: Path) -> None:
    write_async_ledger(tmp_path)
    conn = sqlite3.connect(tmp_path / "ledger.sqlite")
    conn.execute("UPDATE client_rounds SET staleness = NULL WHERE round = 1")  # 2 fresh rows
    conn.commit()
    conn.close()
    with open_run(tmp_path) as r:
        h = staleness_histogram(r.conn)
        sec = section(render_run_report(r, ()), "staleness")
    assert h is not None and h.unrecorded == 2
    assert h.all_updates == {0: 1, 1: 4, 2: 1}
    assert sec is not None and "data-recorded='partly'" in sec and "2 updates" in sec


def test_sync_hand_ledger_has_no_async_section(tmp_path: Path) -> None:
    write_hand_ledger(tmp_path)
    with open_run(tmp_path) as r:
        assert not r.asynchronous
        page = render_run_report(r, ())
    assert section(page, "staleness") is None
    assert "server step" not in page
    assert "after each round (round 0" in page


def test_bins_group_values_when_there_are_many() -> None:
    """100 values (0..99) into at most 40 bars: 3 values a bar (ceil(100 / 40)), 34 bars,
    the last holding 99 alone; gaps stay as empty bars."""
    all_updates = {v: 1 for v in range(0, 100, 2)} | {99: 5}  # even values once, 99 five times
    aggregated = {0: 1, 4: 1}
    bins = staleness_bins(StalenessHistogram(all_updates, aggregated), 40)
    assert len(bins) == 34
    assert (bins[0].lo, bins[0].hi, bins[0].all_updates, bins[0].aggregated) == (0, 2, 2, 1)
    assert (bins[1].lo, bins[1].hi, bins[1].all_updates, bins[1].aggregated) == (3, 5, 1, 1)
    assert (bins[-1].lo, bins[-1].hi, bins[-1].all_updates) == (99, 101, 5)
    assert sum(b.all_updates for b in bins) == 50 + 5
    # few values: one a bar, the missing 1 as an empty bar
    few = staleness_bins(StalenessHistogram({0: 2, 2: 1}, {0: 2}), 40)
    assert [(b.lo, b.hi, b.all_updates) for b in few] == [(0, 0, 2), (1, 1, 0), (2, 2, 1)]
    assert staleness_bins(StalenessHistogram({}, {}), 40) == []
    assert math.isnan(StalenessHistogram({}, {}).mean(aggregated_only=True))


# ---- real runs ------------------------------------------------------------------------------

DIGITS = ["data.dataset=digits", "data.num_clients=20"]


@pytest.fixture(scope="module")
def async_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A FedBuff run: 6 server steps of 3 updates, 8 clients in flight, drop-outs on (so
    some updates are not aggregated)."""
    out = tmp_path_factory.mktemp("async") / "run"
    overrides = [
        *DIGITS,
        "train.rounds=6",
        "engine.mode=async",
        "strategy.name=fedbuff",
        "async.concurrency=8",
        "async.buffer_size=3",
        "fleet.dropout_prob=0.3",
    ]
    run(None, out, overrides=overrides)
    return out


@pytest.fixture(scope="module")
def sync_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sync") / "run"
    run(None, out, overrides=[*DIGITS, "train.rounds=2", "train.clients_per_round=4"])
    return out


def test_real_async_run_histogram_equals_the_ledger(async_run: Path) -> None:
    all_updates, aggregated = recount(async_run / "ledger.sqlite")
    assert max(all_updates) > 0  # 8 in flight, 3 a step: some updates are stale
    with open_run(async_run) as r:
        page = render_run_report(r, ())
    sec = section(page, "staleness")
    assert sec is not None
    assert table_counts(sec) == (dict(all_updates), dict(aggregated))
    n_all, n_done = sum(all_updates.values()), sum(aggregated.values())
    assert metric(sec, "staleness_all_count") == str(n_all)
    assert metric(sec, "staleness_aggregated_count") == str(n_done)
    mean_done = sum(v * k for v, k in aggregated.items()) / n_done
    assert float(metric(sec, "staleness_aggregated_mean")) == pytest.approx(mean_done)
    assert metric(sec, "staleness_all_max") == str(max(all_updates))
    assert "6 server steps" in sec
    # the accuracy curves cover every server step, against time and carbon
    acc = section(page, "accuracy")
    assert acc is not None and "simulated time" in acc and "cumulative carbon" in acc


def test_real_async_terminal_summary(async_run: Path) -> None:
    _, aggregated = recount(async_run / "ledger.sqlite")
    n = sum(aggregated.values())
    mean = sum(v * k for v, k in aggregated.items()) / n
    with open_run(async_run) as r:
        table = summary_table(r.summary, r.conn, r.initial_accuracy, "done")
    console = Console(width=200, record=True)
    console.print(table)
    text = console.export_text()
    assert re.search(r"server steps\s+│ 6\b", text)
    assert f"mean {mean:.2f}, max {max(aggregated)} server steps (over {n} aggregated" in text


def test_real_sync_run_has_no_async_views(sync_run: Path) -> None:
    conn = sqlite3.connect(sync_run / "ledger.sqlite")
    # a schema-5 sync ledger records staleness 0 for every update
    assert conn.execute("SELECT COUNT(*), MAX(staleness) FROM client_rounds").fetchone() == (8, 0)
    conn.close()
    with open_run(sync_run) as r:
        assert not r.asynchronous
        page = render_run_report(r, ())
        table = summary_table(r.summary, r.conn, r.initial_accuracy, "done")
    assert section(page, "staleness") is None
    # (the resolved config, at the page's end, lists the [async] defaults)
    shown = page[: page.index('<section id="config">')]
    assert "server step" not in shown and "staleness" not in shown
    console = Console(width=200, record=True)
    console.print(table)
    text = console.export_text()
    assert "staleness" not in text and re.search(r"rounds\s+│ 2\b", text)
