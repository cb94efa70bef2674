"""Sub-models side by side in ``greenfl compare`` and its report (issue 31): per config, the
sub-model it ran (``submodel.name``), the width its clients trained at (weighted by their
samples), the clients' compute energy and the intelligence per kWh, each as mean ± std over
seeds with its ratio to the first config, paired by seed; per run, the compute energy and
final accuracy of each width, and each width's accuracy against carbon on one figure. Read
from the run folders (ledger and summary.json), never recomputed."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

from greenfl.analysis.seed_stats import ConfigRuns, Stat, mean_std
from greenfl.report import plots
from greenfl.report.headline import energy_unit, format_large, plain_number
from greenfl.report.run_data import RunData, open_run
from greenfl.report.seed_cells import ratio_text
from greenfl.report.submodel_view import submodel_name, width_label
from greenfl.report.tables import breakdown, intelligence_per_kwh, round_series
from greenfl.report.widths import GroupUsage, WidthCurve, mean_width, usage_by, width_curves


@dataclass(frozen=True)
class SubmodelFacts:
    """One run's sub-model figures. ``widths``: its client rounds per width (widest
    first); ``curves``: each width's accuracy against the run's cumulative carbon."""

    submodel: str
    mean_width: float | None
    compute_j: float
    intelligence_per_kwh: float | None
    widths: list[GroupUsage]
    curves: list[WidthCurve]

    @property
    def trained_submodels(self) -> bool:
        return any(g.key is not None and g.key != 1.0 for g in self.widths)


def submodel_facts(run: RunData) -> SubmodelFacts:
    s = run.summary
    recorded = s.get("submodel")
    name = recorded.get("name") if isinstance(recorded, dict) else None
    acc = s.get("final_accuracy")
    total_j = float(s["energy_j"]["total"])
    ipk = intelligence_per_kwh(acc, run.initial_accuracy, total_j) if acc is not None else None
    return SubmodelFacts(
        submodel=str(name) if name is not None else submodel_name(run.config),
        mean_width=mean_width(run.conn),
        compute_j=breakdown(run.conn).compute_j,
        intelligence_per_kwh=ipk if ipk is not None and math.isfinite(ipk) else None,
        widths=usage_by(run.conn, "width") or [],
        curves=width_curves(run.conn, round_series(run.conn)),
    )


def facts_of(run_dir: str | Path) -> SubmodelFacts | None:
    """A run folder's facts; None where it holds no ledger (nothing to read)."""
    if not (Path(run_dir) / "ledger.sqlite").is_file():
        return None
    with open_run(run_dir) as run:
        return submodel_facts(run)


def paired_stat(
    values: Sequence[float | None], seeds: Sequence[int], base: dict[int, float | None]
) -> Stat:
    """Mean ± std of ``values`` and of their ratios to ``base`` at the same seed (the rule
    of greenfl.analysis.seed_stats: a ratio below 1 means less than the first config)."""
    mean, std, n = mean_std(values)
    ratios = []
    for seed, v in zip(seeds, values, strict=True):
        b = base.get(seed)
        if v is not None and b is not None and b != 0:
            ratios.append(v / b)
    r_mean, r_std, _ = mean_std(ratios)
    return Stat(mean, std, n, r_mean, r_std)


# Rows of the side-by-side table: key, label, the value of one run.
NUMERIC_ROWS: tuple[tuple[str, str, Callable[[SubmodelFacts], float | None]], ...] = (
    ("mean_width", "mean width (sample-weighted)", lambda f: f.mean_width),
    ("compute_j", "client compute energy", lambda f: f.compute_j),
    (
        "intelligence_per_kwh",
        "intelligence per kWh (accuracy points / kWh)",
        lambda f: f.intelligence_per_kwh,
    ),
)


@dataclass(frozen=True)
class SideBySide:
    """The table, one row per figure and one cell per config, and each run's facts."""

    rows: list[tuple[str, list[str]]]
    facts: list[list[SubmodelFacts | None]]  # per config, per seed


def side_by_side(configs: Sequence[ConfigRuns]) -> SideBySide:
    """Each config's sub-model, mean width, client compute energy and intelligence per kWh
    (mean ± std; under each after the first, its ratio to the first, paired by seed)."""
    facts = [[facts_of(d) for d in c.out_dirs] for c in configs]
    names = [
        ", ".join(sorted({f.submodel for f in runs if f is not None})) or "n/a (no ledger)"
        for runs in facts
    ]
    rows: list[tuple[str, list[str]]] = [("sub-model", names)]
    first = configs[0]
    for key, label, get in NUMERIC_ROWS:
        per_config = [[get(f) if f is not None else None for f in runs] for runs in facts]
        base = dict(zip(first.seeds, per_config[0], strict=True))
        stats = [
            paired_stat(vals, c.seeds, base) for c, vals in zip(configs, per_config, strict=True)
        ]
        scale, text = _formatter(key, stats)
        cells = []
        for i, (c, s) in enumerate(zip(configs, stats, strict=True)):
            if s.mean is None:
                cells.append("n/a (no ledger)")
                continue
            cell = f"{text(s.mean)} ± {text(s.std or 0.0)}"
            if s.n < len(c.seeds):
                cell += f" (n={s.n})"
            if i > 0:
                cell += f"\n{ratio_text(s)}"
            cells.append(cell)
        rows.append((f"{label}{scale}", cells))
    return SideBySide(rows, facts)


def _formatter(key: str, stats: Sequence[Stat]) -> tuple[str, Callable[[float], str]]:
    """The label's unit and how one value of the row reads (energy: the unit of the row's
    largest mean, as every table of the report does)."""
    if key == "compute_j":
        k, unit = energy_unit(*(s.mean for s in stats))
        return f" ({unit})", lambda v: plain_number(v * k)
    if key == "intelligence_per_kwh":
        return "", format_large
    return "", lambda v: f"{v:.3f}"


def rows_table(configs: Sequence[ConfigRuns], rows: Sequence[tuple[str, list[str]]]) -> str:
    """The side-by-side rows as HTML: one column per config."""
    head = "<tr><th>figure</th>" + "".join(
        f"<th class='num'>{escape(c.name)}</th>" for c in configs
    )
    body = "".join(
        f"<tr data-figure='{escape(label)}'><td>{escape(label)}</td>"
        + "".join(
            f"<td class='num'>{'<br>'.join(escape(part) for part in cell.split(chr(10)))}</td>"
            for cell in cells
        )
        + "</tr>"
        for label, cells in rows
    )
    return f"<table data-side-by-side><thead>{head}</tr></thead><tbody>{body}</tbody></table>"


def per_width_table(names: Sequence[str], facts: Sequence[SubmodelFacts]) -> str:
    """Each run's client compute energy per width, its share of the run's, and the final
    accuracy of that width's slice."""
    k, unit = energy_unit(*(g.compute_j for f in facts for g in f.widths))
    head = (
        "<tr><th>run</th><th>width</th><th class='num'>client rounds</th>"
        f"<th class='num'>compute energy ({escape(unit)})</th><th class='num'>share</th>"
        "<th class='num'>final accuracy of its slice</th></tr>"
    )
    rows = []
    for name, f in zip(names, facts, strict=True):
        total = sum(g.compute_j for g in f.widths)
        finals = {c.width: c.final_accuracy for c in f.curves}
        for g in f.widths:
            acc = finals.get(g.key) if isinstance(g.key, float) else None
            width = "not recorded" if g.key is None else f"{g.key:g}"
            rows.append(
                f"<tr data-run='{escape(name)}' data-width='{escape(width)}' "
                f"data-compute-j='{g.compute_j!r}'><td>{escape(name)}</td><td>{width}</td>"
                f"<td class='num'>{g.client_rounds:,}</td>"
                f"<td class='num'>{plain_number(g.compute_j * k)}</td>"
                f"<td class='num'>{f'{g.compute_j / total:.1%}' if total else 'n/a'}</td>"
                f"<td class='num'>{'n/a' if acc is None else f'{acc * 100:.2f}%'}</td></tr>"
            )
    return f"<table data-per-width><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def widths_figure(names: Sequence[str], facts: Sequence[SubmodelFacts]) -> str:
    """Every width of every run on one figure: accuracy against the run's cumulative
    carbon."""
    curves = [
        plots.RunCurve(f"{name}: {width_label(c.width)}", c.cum_carbon_g, c.accuracy, math.nan)
        for name, f in zip(names, facts, strict=True)
        for c in f.curves
    ]
    return plots.curves_figure(
        curves,
        "compare-widths",
        "Accuracy of each run's sub-model widths against cumulative carbon",
        "Each width's slice vs cumulative carbon, runs side by side",
    )


def side_by_side_section(configs: Sequence[ConfigRuns], base: str) -> tuple[str, str, str]:
    """The comparison report's section: the side-by-side table, and where some run trained
    sub-models, each run's compute per width and each width's curve."""
    sbs = side_by_side(configs)
    body = rows_table(configs, sbs.rows) + (
        "<p class='src'>Mean width: the width each client round trained at, weighted by its "
        "samples (1 = the full model). Client compute energy: the clients' training energy "
        "alone. Intelligence per kWh: accuracy points gained over the untrained model per "
        "kWh of the run's total energy. Under each value after the first config: its ratio "
        f"to {escape(base)}, paired by seed, mean ± std; above 1 means more.</p>"
    )
    runs = [
        (Path(d).name, f)
        for c, per_seed in zip(configs, sbs.facts, strict=True)
        for d, f in zip(c.out_dirs, per_seed, strict=True)
        if f is not None
    ]
    if any(f.trained_submodels for _, f in runs):
        names = [n for n, _ in runs]
        facts = [f for _, f in runs]
        body += (
            "<h3>Client compute per width</h3>"
            + per_width_table(names, facts)
            + f"<figure>{widths_figure(names, facts)}<figcaption>Test accuracy after each "
            "round (from round 1) of each run's full model and of each narrower width's "
            "slice, against the run's cumulative carbon.</figcaption></figure>"
        )
    return ("submodels", f"Sub-models and intelligence per kWh, ratios to {base}", body)
