from __future__ import annotations

import csv
import json
import math
import statistics
import textwrap
from pathlib import Path

import pytest

from greenfl.cli import main

CONFIG = """
[data]
num_clients = 20
[train]
rounds = 2
clients_per_round = 4
[stop]
target_accuracy = 0.15
[selection]
name = "{selector}"
[compression]
name = "{codec}"
"""


def _write(tmp_path: Path, name: str, selector: str, codec: str) -> Path:
    p = tmp_path / f"{name}.toml"
    p.write_text(textwrap.dedent(CONFIG.format(selector=selector, codec=codec)))
    return p


def test_compare_table_csv_json_and_ratios(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = _write(tmp_path, "base", "random", "identity")
    b = _write(tmp_path, "green", "carbon", "q8")
    out = tmp_path / "cmp"
    rc = main(["compare", str(a), str(b), "--seeds", "0,1", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr()
    assert "carbon to target (" in printed.out and "base" in printed.out and "green" in printed.out
    assert "green seed 1" in printed.err  # progress per run on stderr
    assert "None" not in printed.out + printed.err

    summaries = {
        (name, s): json.loads((out / f"{name}-seed{s}" / "summary.json").read_text())
        for name in ("base", "green")
        for s in (0, 1)
    }
    data = json.loads((out / "compare.json").read_text())
    stats = {c["name"]: c["stats"] for c in data["configs"]}
    for key, get in (
        ("carbon_total_g", lambda s: s["carbon_g"]["total"]),
        ("energy_kwh", lambda s: s["energy_j"]["total"] / 3.6e6),
        ("final_accuracy", lambda s: s["final_accuracy"]),
    ):
        for name in ("base", "green"):
            vals = [get(summaries[(name, s)]) for s in (0, 1)]
            assert stats[name][key]["mean"] == pytest.approx(statistics.mean(vals))
            assert stats[name][key]["std"] == pytest.approx(statistics.stdev(vals))
        ratios = [get(summaries[("green", s)]) / get(summaries[("base", s)]) for s in (0, 1)]
        assert stats["green"][key]["ratio_mean"] == pytest.approx(statistics.mean(ratios))
        assert stats["green"][key]["ratio_std"] == pytest.approx(statistics.stdev(ratios))
        assert stats["base"][key]["ratio_mean"] == pytest.approx(1.0)
    # gCO2e to target: only seeds that reached it count.
    reached = [s for s in (0, 1) if summaries[("green", s)]["carbon_g_to_target"] is not None]
    assert stats["green"]["carbon_g_to_target"]["n"] == len(reached)

    with (out / "compare.csv").open() as fh:
        rows = {(r["config"], r["metric"]): r for r in csv.DictReader(fh)}
    row = rows[("green", "carbon_total_g")]
    assert float(row["mean"]) == pytest.approx(stats["green"]["carbon_total_g"]["mean"])
    assert float(row["ratio_mean"]) == pytest.approx(stats["green"]["carbon_total_g"]["ratio_mean"])
    rounds = [summaries[("base", s)]["rounds_completed"] for s in (0, 1)]
    assert math.isclose(float(rows[("base", "rounds_completed")]["mean"]), statistics.mean(rounds))


def test_compare_rejects_bad_seeds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _write(tmp_path, "base", "random", "identity")
    assert main(["compare", str(a), "--seeds", "0,x", "--out", str(tmp_path / "o")]) == 2
    assert "error: --seeds" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "missing.toml")]) == 2


def test_runs_are_interleaved_by_seed(tmp_path: Path) -> None:
    from greenfl.analysis.compare_seeds import compare

    a = _write(tmp_path, "a", "random", "identity")
    b = _write(tmp_path, "b", "random", "q8")
    order: list[tuple[str, int]] = []

    def fake_run(cfg, out):  # noqa: ANN001, ANN202
        order.append((cfg.compression.name, cfg.seed))
        return {
            "final_accuracy": 0.5,
            "rounds_completed": 1,
            "rounds_to_target": None,
            "sim_time_s": 1.0,
            "energy_j": {"total": 3.6e6},
            "carbon_g": {"operational": 1.0, "embodied": 1.0, "total": 2.0 + cfg.seed},
            "carbon_g_to_target": None,
        }

    runs = compare([a, b], [3, 4], tmp_path / "o", run_fn=fake_run)
    assert order == [("identity", 3), ("q8", 3), ("identity", 4), ("q8", 4)]
    assert [m["carbon_total_g"] for m in runs[1].metrics] == [5.0, 6.0]
    assert runs[0].out_dirs == [str(tmp_path / "o" / "a-seed3"), str(tmp_path / "o" / "a-seed4")]


NO_TARGET = """
[data]
num_clients = 12
[train]
rounds = 2
clients_per_round = 3
[compression]
name = "{codec}"
"""


def test_without_a_target_the_to_target_rows_use_the_accuracy_every_run_reached(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The HTML comparison is per config (mean ± std, ratios paired by seed, as in the
    terminal), its to-target column is not n/a, and each run's own report exists."""
    paths = []
    for name, codec in (("plain", "identity"), ("small", "q8")):
        paths.append(tmp_path / f"{name}.toml")
        paths[-1].write_text(textwrap.dedent(NO_TARGET.format(codec=codec)))
    out = tmp_path / "cmp"
    assert main(["compare", *map(str, paths), "--seeds", "0,1", "--out", str(out)]) == 0
    data = json.loads((out / "compare.json").read_text())
    runs = [r for c in data["configs"] for r in c["runs"]]
    target = min(r["best_accuracy"] for r in runs)
    assert data["target_accuracy"] == pytest.approx(target)
    for c in data["configs"]:
        assert c["stats"]["carbon_g_to_target"]["n"] == 2  # every run reached it
    assert data["configs"][1]["stats"]["carbon_g_to_target"]["ratio_mean"] is not None
    for r in runs:
        assert (Path(r["out_dir"]) / "report.html").is_file()  # the footer's promise
    html = (out / "report.html").read_text()
    assert html.count("<tr data-config=") == 2 and html.count("<tr data-run=") == 4
    cells = html.split("<tr data-config='small'>")[1].split("</tr>")[0]
    assert cells.count("±") >= 8 and "n/a" not in cells  # values and ratios, mean ± std
    assert html.count("href='plain-seed0/report.html'") == 1
    printed = capsys.readouterr().out
    assert f"at {target * 100:.2f}% accuracy" in printed  # the terminal names it too


def test_carbon_to_accuracy_matches_the_summary(tmp_path: Path) -> None:
    import greenfl
    from greenfl.analysis.seed_stats import to_accuracy
    from greenfl.config import build_config

    cfg = build_config(
        {"data": {"num_clients": 12}, "train": {"rounds": 3, "clients_per_round": 3}}
    )
    result = greenfl.run(cfg.replace(**{"stop.target_accuracy": 0.2}), tmp_path / "r")
    s = result.summary
    if s["rounds_to_target"] is None:
        pytest.skip("target not reached")
    got = to_accuracy(tmp_path / "r" / "ledger.sqlite", 0.2)
    assert got is not None
    assert got[0] == s["rounds_to_target"]
    assert got[2] == pytest.approx(s["carbon_g_to_target"])


def test_end_labels_are_spread_apart() -> None:
    from greenfl.report.svg import spread_apart

    # Pixel ys of three line ends (y grows downwards); 13.2 px is one line of 11 px text.
    ys = spread_apart([80.0, 80.5, 200.0], 13.2, lo=0.0, hi=300.0)
    # The two that collide stack around their mean, 80.25 +- 6.6; the third stays put.
    assert ys == pytest.approx([73.65, 86.85, 200.0])
    # Pushed past the top, a stack starts at it and keeps its gaps.
    assert spread_apart([1.0, 2.0], 10.0, lo=0.0) == pytest.approx([0.0, 10.0])
    assert spread_apart([50.0], 4.0) == [50.0]
