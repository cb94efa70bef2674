"""The report of several runs: accuracy against cumulative carbon on the same axes, and a
table of each run's totals and their ratio to the first run's."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

from greenfl.report import plots
from greenfl.report.headline import format_accuracy, format_carbon, format_energy
from greenfl.report.html import page
from greenfl.report.run_data import ReportError, RunData, open_run
from greenfl.report.tables import intelligence_per_kwh, round_series


def expand_run_dirs(paths: Sequence[str | Path]) -> list[Path]:
    """Run folders from the arguments: a run folder as is; a folder without a ledger (e.g.
    ``greenfl compare``'s --out) contributes its sub-folders that hold one, sorted by name."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if (p / "ledger.sqlite").is_file():
            out.append(p)
        elif p.is_dir():
            subs = sorted(d for d in p.iterdir() if (d / "ledger.sqlite").is_file())
            if not subs:
                raise ReportError(f"{p}: neither a run folder nor a folder of runs (no ledger)")
            out.extend(subs)
        else:
            raise ReportError(f"no run folder at {p}")
    return out


@dataclass(frozen=True)
class RunRow:
    name: str
    rounds: int
    final_accuracy: float | None
    energy_j: float
    carbon_g: float
    carbon_g_to_target: float | None
    intelligence_per_kwh: float


def run_row(run: RunData, name: str) -> RunRow:
    s = run.summary
    acc = s["final_accuracy"]
    energy = float(s["energy_j"]["total"])
    return RunRow(
        name=name,
        rounds=int(s["rounds_completed"]),
        final_accuracy=acc,
        energy_j=energy,
        carbon_g=float(s["carbon_g"]["total"]),
        carbon_g_to_target=s.get("carbon_g_to_target"),
        intelligence_per_kwh=(
            intelligence_per_kwh(acc, run.initial_accuracy, energy) if acc is not None else math.nan
        ),
    )


def ratio(value: float | None, base: float | None) -> float | None:
    """value / base; None where either is missing or the base is zero."""
    if value is None or base is None or base == 0:
        return None
    return value / base


def ratio_table(rows: Sequence[RunRow]) -> list[dict[str, float | None]]:
    """For each run, its energy, carbon, carbon-to-target and accuracy against the first."""
    base = rows[0]
    return [
        {
            "energy": ratio(r.energy_j, base.energy_j),
            "carbon": ratio(r.carbon_g, base.carbon_g),
            "carbon_to_target": ratio(r.carbon_g_to_target, base.carbon_g_to_target),
            "final_accuracy": ratio(r.final_accuracy, base.final_accuracy),
            "intelligence_per_kwh": ratio(r.intelligence_per_kwh, base.intelligence_per_kwh),
        }
        for r in rows
    ]


def unique_names(paths: Sequence[Path]) -> list[str]:
    """Short, distinct labels: the folder name, with its parent where names repeat."""
    names = [p.name for p in paths]
    if len(set(names)) == len(names):
        return names
    return [f"{p.parent.name}/{p.name}" for p in paths]


def _x(v: float | None) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.3g}x"


def render_compare_report(run_dirs: Sequence[Path]) -> str:
    names = unique_names(run_dirs)
    curves, rows = [], []
    for path, name in zip(run_dirs, names, strict=True):
        with open_run(path) as run:
            s = round_series(run.conn)
            curves.append(plots.RunCurve(name, s.cum_carbon_g, s.accuracy, run.initial_accuracy))
            rows.append(run_row(run, name))
    ratios = ratio_table(rows)
    head = (
        "<tr><th>run</th><th class='num'>rounds</th><th class='num'>final accuracy</th>"
        "<th class='num'>energy</th><th class='num'>carbon</th>"
        "<th class='num'>carbon to target</th>"
        "<th class='num'>pts/kWh</th><th class='num'>energy ratio</th>"
        "<th class='num'>carbon ratio</th><th class='num'>to-target ratio</th></tr>"
    )
    body = "".join(
        f"<tr data-run='{escape(r.name)}' data-carbon-ratio='{q['carbon']!r}'>"
        f"<td>{escape(r.name)}</td><td class='num'>{r.rounds}</td>"
        f"<td class='num'>{format_accuracy(r.final_accuracy)}</td>"
        f"<td class='num'>{format_energy(r.energy_j)}</td>"
        f"<td class='num'>{format_carbon(r.carbon_g)}</td>"
        f"<td class='num'>{format_carbon(r.carbon_g_to_target)}</td>"
        f"<td class='num'>{r.intelligence_per_kwh:.4g}</td>"
        f"<td class='num'>{_x(q['energy'])}</td><td class='num'>{_x(q['carbon'])}</td>"
        f"<td class='num'>{_x(q['carbon_to_target'])}</td></tr>"
        for r, q in zip(rows, ratios, strict=True)
    )
    table = f"<table><thead>{head}</thead><tbody>{body}</tbody></table>"
    fig = (
        f"<figure>{plots.overlay_figure(curves)}<figcaption>Round 0 is each run's untrained "
        "model.</figcaption></figure>"
    )
    sections = [
        ("overlay", "Accuracy against carbon", fig),
        (
            "ratios",
            f"Totals, and ratios to the first run ({escape(rows[0].name)})",
            table + "<p class='src'>A ratio below 1 means less than the first run. The runs' own "
            "reports (report.html in each folder) hold the details.</p>",
        ),
    ]
    header = (
        f"<h1>greenfl comparison: {len(rows)} runs</h1>"
        f"<p>{escape(', '.join(str(p) for p in run_dirs))}</p>"
    )
    return page("greenfl comparison", header, sections)


def write_compare_report(run_dirs: Sequence[str | Path], out_dir: str | Path) -> Path:
    dirs = expand_run_dirs(run_dirs)
    text = render_compare_report(dirs)
    dest = Path(out_dir) / "report.html"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text, encoding="utf-8")
    return dest
