"""The report of several runs: accuracy against cumulative carbon on the same axes, a table
per config (mean ± std over its seeds, and ratios to the first config paired by seed, as
``greenfl compare`` prints them), and each run's totals with a link to its own report."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

from greenfl.analysis.seed_stats import ConfigRuns, Stat, aggregate, align_targets, run_metrics
from greenfl.report import plots
from greenfl.report.headline import format_accuracy, format_carbon, format_energy, format_large
from greenfl.report.page import page
from greenfl.report.run_data import ReportError, RunData, open_run
from greenfl.report.seed_cells import TableUnits, label, mean_std_text, ratio_text, stat_units
from greenfl.report.submodel_compare import side_by_side_section, submodel_facts
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
    # issue 31: the sub-model it ran, the sample-weighted width its clients trained at,
    # and the clients' compute energy
    submodel: str = "none"
    mean_width: float | None = None
    compute_j: float | None = None


def run_row(run: RunData, name: str) -> RunRow:
    s = run.summary
    acc = s["final_accuracy"]
    energy = float(s["energy_j"]["total"])
    sub = submodel_facts(run)
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
        submodel=sub.submodel,
        mean_width=sub.mean_width,
        compute_j=sub.compute_j,
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
            "compute": ratio(r.compute_j, base.compute_j),
        }
        for r in rows
    ]


def unique_names(paths: Sequence[Path]) -> list[str]:
    """Short, distinct labels: the folder name, with its parent where names repeat."""
    names = [p.name for p in paths]
    if len(set(names)) == len(names):
        return names
    return [f"{p.parent.name}/{p.name}" for p in paths]


SEED_SUFFIX = re.compile(r"-seed\d+$")

# The per-config table's columns: metric key, label (a quantity's names its unit), format.
CONFIG_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("final_accuracy", "final accuracy", "{:.2%}"),
    ("energy_kwh", "energy", ""),
    ("carbon_total_g", "carbon", ""),
    ("carbon_g_to_target", "carbon to target", ""),
)


def config_groups(run_dirs: Sequence[Path], names: Sequence[str]) -> list[ConfigRuns]:
    """The runs grouped by config: ``greenfl compare`` names its runs <config>-seed<s>;
    any other run is a config of its own."""
    groups: dict[str, ConfigRuns] = {}
    for path, name in zip(run_dirs, names, strict=True):
        with open_run(path) as run:
            summary = run.summary
            seed = int(run.config.get("seed", 0)) if isinstance(run.config, dict) else 0
        key = SEED_SUFFIX.sub("", name)
        c = groups.setdefault(key, ConfigRuns(key, str(path), []))
        c.seeds.append(seed)
        c.metrics.append(run_metrics(summary, path / "ledger.sqlite"))
        c.out_dirs.append(str(path))
    configs = list(groups.values())
    align_targets(configs)
    return configs


def _stat_cell(
    key: str, s: Stat, fmt: str, units: TableUnits, runs: int, target: float | None, first: bool
) -> str:
    text = escape(mean_std_text(key, s, fmt, units, runs, target))
    if not first and s.mean is not None:
        text += f"<br><span class='src'>{escape(ratio_text(s))}</span>"
    return text


def config_table(configs: Sequence[ConfigRuns]) -> str:
    stats = aggregate(configs)
    units = stat_units(stats, [k for k, _, _ in CONFIG_COLUMNS])
    target = configs[0].target
    head = "<tr><th>config</th><th class='num'>runs</th>" + "".join(
        f"<th class='num'>{escape(label(key, name, units, target))}</th>"
        for key, name, _ in CONFIG_COLUMNS
    )
    body = "".join(
        f"<tr data-config='{escape(c.name)}'><td>{escape(c.name)}</td>"
        f"<td class='num'>{len(c.seeds)}</td>"
        + "".join(
            f"<td class='num'>"
            f"{_stat_cell(key, stats[c.name][key], fmt, units, len(c.seeds), target, i == 0)}</td>"
            for key, _, fmt in CONFIG_COLUMNS
        )
        + "</tr>"
        for i, c in enumerate(configs)
    )
    return f"<table><thead>{head}</tr></thead><tbody>{body}</tbody></table>"


def _report_link(path: Path, out_dir: Path | None) -> str:
    report = path / "report.html"
    if out_dir is None or not report.is_file():
        return ""
    href = os.path.relpath(report.resolve(), out_dir.resolve())
    return f"<a href='{escape(href)}'>report</a>"


def _times(r: float | None) -> str:
    """A ratio to the first run, as the table shows it under a value."""
    return "" if r is None else f"<br><span class='src'>{r:.3g}x</span>"


def run_table(rows: Sequence[RunRow], dirs: Sequence[Path], out_dir: Path | None) -> str:
    # One unit per column: that of the column's largest figure.
    scale_j = max((r.energy_j for r in rows), default=0.0)
    scale_g = max((r.carbon_g for r in rows), default=0.0)
    scale_c = max((r.compute_j or 0.0 for r in rows), default=0.0)
    ratios = ratio_table(rows) if rows else []
    head = (
        "<tr><th>run</th><th class='num'>rounds</th><th class='num'>final accuracy</th>"
        "<th class='num'>energy</th><th class='num'>carbon</th><th>sub-model</th>"
        "<th class='num'>mean width</th><th class='num'>client compute</th>"
        "<th class='num'>pts/kWh</th><th>own report</th></tr>"
    )
    body = "".join(
        f"<tr data-run='{escape(r.name)}'>"
        f"<td>{escape(r.name)}</td><td class='num'>{r.rounds}</td>"
        f"<td class='num'>{format_accuracy(r.final_accuracy)}</td>"
        f"<td class='num'>{format_energy(r.energy_j, scale_j)}</td>"
        f"<td class='num'>{format_carbon(r.carbon_g, scale_g)}</td>"
        f"<td>{escape(r.submodel)}</td>"
        f"<td class='num'>{'n/a' if r.mean_width is None else f'{r.mean_width:.3f}'}</td>"
        f"<td class='num' data-metric='compute_j'>{format_energy(r.compute_j, scale_c)}"
        f"{_times(q['compute']) if i else ''}</td>"
        f"<td class='num' data-metric='intelligence_per_kwh'>"
        f"{format_large(r.intelligence_per_kwh)}"
        f"{_times(q['intelligence_per_kwh']) if i else ''}</td>"
        f"<td>{_report_link(d, out_dir) or 'none'}</td></tr>"
        for i, (r, d, q) in enumerate(zip(rows, dirs, ratios, strict=True))
    )
    return f"<table><thead>{head}</thead><tbody>{body}</tbody></table>"


def render_compare_report(run_dirs: Sequence[Path], out_dir: Path | None = None) -> str:
    names = unique_names(run_dirs)
    curves, rows = [], []
    for path, name in zip(run_dirs, names, strict=True):
        with open_run(path) as run:
            s = round_series(run.conn)
            curves.append(plots.RunCurve(name, s.cum_carbon_g, s.accuracy, run.initial_accuracy))
            rows.append(run_row(run, name))
    configs = config_groups(run_dirs, names)
    fig = (
        f"<figure>{plots.overlay_figure(curves)}<figcaption>Round 0 is each run's untrained "
        "model.</figcaption></figure>"
    )
    target_note = (
        ""
        if configs[0].target is None
        else f" Carbon to target: up to the first round at {format_accuracy(configs[0].target)} "
        "accuracy (the runs' shared target, or else the best accuracy every run reached)."
    )
    linked = sum(bool(_report_link(d, out_dir)) for d in run_dirs)
    own = (
        "Each run's own report (report.html in its folder) holds the details."
        if linked == len(run_dirs)
        else f"{linked} of {len(run_dirs)} runs have a report.html of their own; "
        "`greenfl report RUN` writes one."
    )
    sections = [
        ("overlay", "Accuracy against carbon", fig),
        (
            "ratios",
            f"Per config: mean ± std over seeds, ratios to {escape(configs[0].name)}",
            config_table(configs)
            + "<p class='src'>Under each value after the first config: its ratio to the first "
            "config, paired by seed, mean ± std. A ratio below 1 means less than the first."
            f"{escape(target_note)}</p>",
        ),
        side_by_side_section(configs, configs[0].name),
        (
            "runs",
            "Each run",
            run_table(rows, run_dirs, out_dir)
            + "<p class='src'>Under client compute and pts/kWh after the first run: its "
            f"ratio to {escape(rows[0].name)}. {own}</p>",
        ),
    ]
    header = (
        f"<h1>greenfl comparison: {len(rows)} runs, {len(configs)} configs</h1>"
        f"<p>{escape(', '.join(str(p) for p in run_dirs))}</p>"
    )
    return page("greenfl comparison", header, sections)


def write_compare_report(run_dirs: Sequence[str | Path], out_dir: str | Path) -> Path:
    dirs = expand_run_dirs(run_dirs)
    text = render_compare_report(dirs, Path(out_dir))
    dest = Path(out_dir) / "report.html"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text, encoding="utf-8")
    return dest
