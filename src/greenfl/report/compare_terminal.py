"""What ``greenfl compare`` prints: a line as each run ends, then one table of every metric
per config (mean ± std over seeds, and under each value after the first config its ratio to
the first). Units and missing values read as in the comparison report (report.seed_cells)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from greenfl.analysis.seed_stats import METRICS, ConfigRuns, aggregate
from greenfl.report.headline import format_accuracy, format_carbon
from greenfl.report.seed_cells import label, mean_std_text, ratio_text, stat_units
from greenfl.report.submodel_compare import side_by_side


def run_done_line(summary: dict[str, Any]) -> str:
    """One finished run: rounds, accuracy and carbon to target, never a bare None."""
    rounds = summary.get("rounds_completed")
    acc = summary.get("final_accuracy")
    g = summary.get("carbon_g_to_target")
    target = summary.get("target_accuracy")
    if g is not None:
        to_target = f"carbon to target {format_carbon(g)}"
    elif target is None:
        to_target = "carbon to target n/a (no target set)"
    else:
        to_target = f"carbon to target n/a ({format_accuracy(target)} not reached)"
    accuracy = "n/a (not evaluated)" if acc is None else format_accuracy(acc)
    done = "n/a rounds" if rounds is None else f"{rounds} round{'' if rounds == 1 else 's'}"
    return f"{done}, accuracy {accuracy}, {to_target}"


def compare_rows(configs: Sequence[ConfigRuns]) -> list[tuple[str, list[str]]]:
    """(label, one cell per config) per metric: the table as text, for any renderer."""
    stats = aggregate(configs)
    units = stat_units(stats, [k for k, _, _ in METRICS])
    target = configs[0].target
    rows = []
    for key, default, fmt in METRICS:
        cells = []
        for i, c in enumerate(configs):
            s = stats[c.name][key]
            text = mean_std_text(key, s, fmt, units, len(c.seeds), target)
            if i > 0 and s.mean is not None and s.ratio_mean is not None:
                text += f"\n{ratio_text(s)}"
            cells.append(text)
        rows.append((label(key, default, units, target), cells))
    return rows


def compare_table(configs: Sequence[ConfigRuns]) -> Any:
    """A rich Table: one row per metric, one column per config."""
    from rich.table import Table

    seeds = sorted({s for c in configs for s in c.seeds})
    t = Table(
        title=f"greenfl compare (mean ± std over seeds {','.join(map(str, seeds))}; under "
        f"each value, its ratio to {configs[0].name}, paired by seed)",
        title_justify="left",
    )
    t.add_column("metric", style="bold")
    for c in configs:
        t.add_column(c.name)
    for name, cells in compare_rows(configs):
        t.add_row(name, *cells)
    # the sub-model each ran, its mean width, client compute energy and intelligence per
    # kWh, with ratios: read from the run folders (a config without any is n/a)
    for name, cells in side_by_side(configs).rows:
        t.add_row(name, *cells)
    return t
