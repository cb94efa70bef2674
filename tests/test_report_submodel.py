"""The report's sub-model views (issue 31, item 5): compute per width (and per precision and
density where a ledger has those columns), each width's accuracy against carbon, and
``greenfl compare`` of finished runs side by side with intelligence per kWh and its ratio.
Most tests read a hand-written ledger in the real on-disk format (LedgerWriter), whose
every number is known; two read a real 2-round digits run with and without sub-models."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import greenfl
from greenfl.cli import main
from greenfl.config import build_config
from greenfl.factories.submodel import WIDTH_ACCURACY_KEY
from greenfl.fleet.catalog import load_fleet
from greenfl.ledger.chain import problems
from greenfl.ledger.summary import summarize
from greenfl.ledger.writer import LedgerWriter
from greenfl.report.run_data import open_run
from greenfl.report.run_report import render_run_report
from greenfl.report.submodel_view import submodel_section, terminal_rows
from greenfl.report.tables import round_series
from greenfl.report.widths import mean_width, usage_by, width_curves

INITIAL_ACCURACY = 0.1


def _client(rnd: int, cid: int, width: float, **kw: Any) -> dict[str, Any]:
    row = {
        "round": rnd,
        "client_id": cid,
        "device": "phone-mid",
        "network": "wifi",
        "region": "FR",
        "target": "default",
        "status": "completed",
        "reason": None,
        "num_samples": 10,
        "flops": 1e6 * width,
        "start_s": 0.0,
        "compute_s": 1.0,
        "bytes_up": int(1000 * width),
        "bytes_down": int(1000 * width),
        "comm_s": 1.0,
        "energy_compute_j": 4.0 * width,
        "energy_comm_j": 1.0,
        "ci_g_per_kwh": 100.0,
        "carbon_operational_g": 2.0,
        "carbon_embodied_g": 0.5,
        "estimated": 1,
        "width": width,
    }
    row.update(kw)
    return row


def _round(rnd: int, acc: float, width_acc: dict[str, float] | None) -> dict[str, Any]:
    return {
        "round": rnd,
        "start_s": 10.0 * (rnd - 1),
        "end_s": 10.0 * rnd,
        "wait_s": 0.0,
        "accuracy": acc,
        "loss": 1.0,
        "selected": 3,
        "completed": 3,
        "server_s": 0.1,
        "server_energy_j": 10.0,
        "server_idle_energy_j": 0.0,
        "server_carbon_g": 1.0,
        "server_ci_g_per_kwh": 300.0,
        "server_estimated": 1,
        "wall_s": 0.1,
        "width_accuracy": None if width_acc is None else json.dumps(width_acc),
    }


# Round 1: clients 0 (width 1), 1 (0.5, 20 samples), 2 (0.5, dropped); round 2: clients 0
# (width 1), 3 (0.5). Width 1: 2 client rounds, 20 samples, 2e6 FLOPs, 8 J compute, 2,000
# bytes up and down, 5 g. Width 0.5: 3 client rounds (2 aggregated), 40 samples, 1.5e6 FLOPs,
# 6 J, 1,500 bytes each way, 7.5 g. Compute shares 8/14 and 6/14; carbon 5/12.5, 7.5/12.5.
SUB_ROWS = [
    [
        _client(1, 0, 1.0),
        _client(1, 1, 0.5, num_samples=20),
        _client(1, 2, 0.5, status="dropped", reason="battery"),
    ],
    [_client(2, 0, 1.0), _client(2, 3, 0.5)],
]
SUB_ROUNDS = [_round(1, 0.5, {"0.5": 0.3}), _round(2, 0.7, {"0.5": 0.45})]


def write_ledger(
    out: Path,
    rounds: list[dict[str, Any]],
    clients: list[list[dict[str, Any]]],
    submodel: dict[str, Any] | None = None,
) -> None:
    """A finished run folder: ledger.sqlite written by the ledger's own writer, and the
    summary.json the run would write."""
    raw: dict[str, Any] = {
        "data": {"num_clients": 4},
        "train": {"rounds": len(rounds), "clients_per_round": 3},
    }
    if submodel is not None:
        raw["submodel"] = submodel
    cfg = build_config(raw)
    out.mkdir(parents=True, exist_ok=True)
    w = LedgerWriter(out / "ledger.sqlite", background=False)
    w.begin_run(cfg.to_dict(), load_fleet().to_dict(), "test")
    w.set_meta("initial_accuracy", str(INITIAL_ACCURACY))
    for r, c in zip(rounds, clients, strict=True):
        w.write_round(r, c)
    w.finish("completed", f"completed {len(rounds)} rounds")
    summary = summarize(w.conn, None, 1.0)
    summary["submodel"] = {"name": submodel["name"] if submodel else "none"}
    w.close()
    (out / "summary.json").write_text(json.dumps(summary))


SUBMODEL = {"name": "heterofl", "widths": [1.0, 0.5], "choice": "fixed"}


@pytest.fixture
def sub_run(tmp_path: Path) -> Path:
    out = tmp_path / "sub"
    write_ledger(out, SUB_ROUNDS, SUB_ROWS, SUBMODEL)
    return out


@pytest.fixture
def full_run(tmp_path: Path) -> Path:
    """The same clients, every one at width 1, no per-width accuracy."""
    out = tmp_path / "full"
    rows = [[_client(r["round"], r["client_id"], 1.0, status=r["status"],
                     num_samples=r["num_samples"]) for r in rnd] for rnd in SUB_ROWS]  # fmt: skip
    write_ledger(out, [_round(1, 0.5, None), _round(2, 0.8, None)], rows)
    return out


def _cells(html: str, column: str, key: str) -> dict[str, float]:
    """The data-value of each metric cell of one row of a usage table."""
    row = re.search(rf"<tr data-group='{column}' data-key='{re.escape(key)}'>(.*?)</tr>", html)
    assert row is not None, f"no {column} row {key}"
    return {
        m: float(v)
        for m, v in re.findall(r"data-metric='(\w+)' data-value='([^']+)'", row.group(1))
        if v != "null"
    }


def test_per_width_usage_is_the_rows_summed(sub_run: Path) -> None:
    with open_run(sub_run) as run:
        groups = {g.key: g for g in usage_by(run.conn, "width") or []}
        assert list(groups) == [1.0, 0.5]  # widest first
        full, half = groups[1.0], groups[0.5]
        assert (full.client_rounds, full.aggregated, full.samples) == (2, 2, 20)
        assert (half.client_rounds, half.aggregated, half.samples) == (3, 2, 40)
        assert full.flops == pytest.approx(2e6) and half.flops == pytest.approx(1.5e6)
        assert full.compute_j == pytest.approx(8.0) and half.compute_j == pytest.approx(6.0)
        assert (full.bytes_up, full.bytes_down, half.bytes_up) == (2000, 2000, 1500)
        assert full.carbon_g == pytest.approx(5.0) and half.carbon_g == pytest.approx(7.5)
        # (1 x 20 + 0.5 x 40) / 60 samples
        assert mean_width(run.conn) == pytest.approx(40 / 60)
        section = submodel_section(run)
    assert section is not None
    sid, title, html = section
    assert sid == "submodels" and "width" in title
    half_cells = _cells(html, "width", "0.5")
    assert half_cells["compute_j"] == pytest.approx(6.0)
    assert half_cells["compute_share"] == pytest.approx(6 / 14)
    assert half_cells["carbon_share"] == pytest.approx(7.5 / 12.5)
    assert half_cells["final_accuracy"] == pytest.approx(0.45)
    assert _cells(html, "width", "1.0")["final_accuracy"] == pytest.approx(0.7)
    assert "data-usage='precision'" not in html  # no such column, or one value


def test_each_width_has_its_accuracy_curve_against_carbon(sub_run: Path) -> None:
    with open_run(sub_run) as run:
        curves = width_curves(run.conn, round_series(run.conn))
        html = render_run_report(run, ())
    # cumulative carbon at each round's end: clients' op + emb, plus the server's 1 g
    # round 1: 3 x 2.5 + 1 = 8.5; round 2: 8.5 + 2 x 2.5 + 1 = 14.5
    assert [c.width for c in curves] == [1.0, 0.5]
    assert curves[1].cum_carbon_g == pytest.approx([8.5, 14.5])
    assert curves[1].accuracy == pytest.approx([0.3, 0.45])
    assert curves[0].accuracy == pytest.approx([0.5, 0.7])
    svg = re.search(r"<svg[^>]*data-plot=\"width-accuracy\".*?</svg>", html, re.S)
    assert svg is not None
    series = re.findall(r'<g data-series="([^"]+)">', svg.group(0))
    assert series == ["full model (width 1)", "width 0.5 slice"]
    assert html.index('id="submodels"') > html.index('id="accuracy"')


def test_terminal_rows_split_compute_by_width(sub_run: Path) -> None:
    with open_run(sub_run) as run:
        rows = dict(terminal_rows(run.conn, 0.7))
    assert rows["compute by width"] == (
        "1 (full): 57.1% of compute energy, 40.0% of client rounds; "
        "0.5: 42.9% of compute energy, 60.0% of client rounds"
    )
    assert rows["accuracy by width"].startswith("1 (full): 0.7000, 0.5: 0.4500")


def test_precision_and_density_are_grouped_where_the_ledger_has_them(sub_run: Path) -> None:
    ledger = sub_run / "ledger.sqlite"
    conn = sqlite3.connect(ledger)
    have = {r[1] for r in conn.execute("PRAGMA table_info(client_rounds)")}
    # as ledger schema 7 writes them (added here where this schema does not have them yet)
    if "precision" not in have:
        conn.execute("ALTER TABLE client_rounds ADD COLUMN precision TEXT")
    if "density" not in have:
        conn.execute("ALTER TABLE client_rounds ADD COLUMN density REAL")
    conn.execute("UPDATE client_rounds SET precision = 'fp32', density = 1.0")
    conn.execute("UPDATE client_rounds SET precision = 'bf16' WHERE client_id = 1")
    conn.commit()
    conn.close()
    with open_run(sub_run) as run:
        by_precision = {g.key: g for g in usage_by(run.conn, "precision") or []}
        section = submodel_section(run)
    assert list(by_precision) == ["fp32", "bf16"]
    assert by_precision["bf16"].compute_j == pytest.approx(2.0)  # client 1 in round 1
    assert by_precision["fp32"].compute_j == pytest.approx(12.0)
    assert section is not None
    html = section[2]
    assert _cells(html, "precision", "bf16")["compute_share"] == pytest.approx(2 / 14)
    assert "data-usage='density'" not in html  # every row dense: nothing to split


def test_a_run_without_submodels_has_no_section(full_run: Path) -> None:
    with open_run(full_run) as run:
        assert submodel_section(run) is None
        assert terminal_rows(run.conn, 0.8) == []
        assert mean_width(run.conn) == pytest.approx(1.0)
        html = render_run_report(run, ())
    assert 'id="submodels"' not in html and "width-accuracy" not in html


def test_a_ledger_before_the_width_column_reads(full_run: Path) -> None:
    conn = sqlite3.connect(full_run / "ledger.sqlite")
    conn.execute("ALTER TABLE client_rounds DROP COLUMN width")
    conn.commit()
    conn.close()
    with open_run(full_run) as run:
        assert usage_by(run.conn, "width") is None and mean_width(run.conn) is None
        assert submodel_section(run) is None


def test_compare_runs_side_by_side_with_ratios(
    full_run: Path, sub_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cmp"
    rc = main(["compare", str(full_run), str(sub_run), "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    lines = {line.split("│")[1].strip(): line for line in printed.splitlines() if "│" in line}
    assert "none" in lines["sub-model"] and "heterofl" in lines["sub-model"]
    assert "1.000 ± 0.000" in lines["mean width (sample-weighted)"]
    assert "0.667 ± 0.000" in lines["mean width (sample-weighted)"]
    # client compute: full 2 x 4 + 3 x 4 = 20 J; sub 14 J: 0.7x
    assert "20 ± 0" in lines["client compute energy (J)"]
    assert "14 ± 0" in lines["client compute energy (J)"]
    # intelligence per kWh: (final - 0.1) x 100 points over the total energy in kWh;
    # total energy = client compute + 5 J of communication + 20 J of server
    ipk_full = (0.8 - 0.1) * 100 / ((20 + 5 + 20) / 3.6e6)
    ipk_sub = (0.7 - 0.1) * 100 / ((14 + 5 + 20) / 3.6e6)
    ratio_rows = [line for line in printed.splitlines() if "x ± 0" in line]
    assert any("0.7x ± 0" in line for line in ratio_rows)  # compute energy
    assert any(f"{ipk_sub / ipk_full:.3g}x ± 0" in line for line in ratio_rows)
    assert f"{ipk_full / 1e6:.3g} million" in lines["intelligence per kWh (accuracy points / kWh)"]
    report = (out / "report.html").read_text()
    assert "data-side-by-side" in report and "data-per-width" in report
    assert re.search(r"data-run='sub' data-width='0.5' data-compute-j='6.0'", report)
    svg = re.search(r"<svg[^>]*data-plot=\"compare-widths\".*?</svg>", report, re.S)
    assert svg is not None
    assert len(re.findall(r'<g data-series="', svg.group(0))) == 3  # full: 1; sub: 1, 0.5
    assert (out / "compare.json").is_file()


def test_compare_refuses_what_does_not_apply_to_run_folders(
    full_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", str(full_run), "--seeds", "1", "--out", str(tmp_path / "o")]) == 2
    assert "run folders are compared as they are" in capsys.readouterr().err
    toml = tmp_path / "a.toml"
    toml.write_text("[train]\nrounds = 1\n")
    assert main(["compare", str(full_run), str(toml), "--out", str(tmp_path / "o")]) == 2
    assert "not both" in capsys.readouterr().err


# ---- real runs: the ledger holds what the observer measured ------------------------------


def _quick(submodel: dict[str, Any] | None) -> Any:
    raw: dict[str, Any] = {
        "data": {"num_clients": 12},
        "train": {"rounds": 2, "clients_per_round": 4, "local_epochs": 1, "batch_size": 16},
    }
    if submodel is not None:
        raw["submodel"] = submodel
    return build_config(raw)


def test_a_submodel_run_persists_each_widths_accuracy(tmp_path: Path) -> None:
    res = greenfl.run(_quick({**SUBMODEL}), tmp_path / "run")
    conn = sqlite3.connect(tmp_path / "run" / "ledger.sqlite")
    stored = [json.loads(t) for (t,) in conn.execute("SELECT width_accuracy FROM rounds")]
    sums = conn.execute(
        "SELECT width, SUM(energy_compute_j) FROM client_rounds GROUP BY width ORDER BY width"
    ).fetchall()
    assert problems(conn) == []  # the hash chain covers the new column
    conn.close()
    measured = [rec.metrics[WIDTH_ACCURACY_KEY] for rec in res.history]
    assert [list(s) for s in stored] == [["0.5"], ["0.5"]]
    assert [s["0.5"] for s in stored] == pytest.approx([m[0.5] for m in measured])
    with open_run(tmp_path / "run") as run:
        section = submodel_section(run)
    assert section is not None
    assert _cells(section[2], "width", "0.5")["compute_j"] == pytest.approx(sums[0][1])
    assert _cells(section[2], "width", "0.5")["final_accuracy"] == pytest.approx(measured[-1][0.5])


def test_a_sync_run_without_submodels_shows_no_section(tmp_path: Path) -> None:
    greenfl.run(_quick(None), tmp_path / "run")
    conn = sqlite3.connect(tmp_path / "run" / "ledger.sqlite")
    assert (
        conn.execute("SELECT COUNT(*) FROM rounds WHERE width_accuracy IS NULL").fetchone()[0] == 2
    )
    conn.close()
    with open_run(tmp_path / "run") as run:
        assert submodel_section(run) is None
        assert 'id="submodels"' not in render_run_report(run, ())
