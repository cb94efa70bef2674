"""The run report's section on how the clients' training was sized (issue 31): with
sub-models (``[submodel]``: each client trains a width-scaled slice of the model), the work,
compute energy, bytes and carbon of each width, and each width's accuracy against the run's
cumulative carbon; the same work grouped by arithmetic precision and by weight density where
the run's clients differed in those. Everything is read from the ledger (report.widths)."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from greenfl.report import plots
from greenfl.report.headline import carbon_unit, energy_unit, format_large, plain_number
from greenfl.report.page import Section, figure, note
from greenfl.report.run_data import RunData
from greenfl.report.tables import RoundSeries, round_series
from greenfl.report.widths import (
    FULL_WIDTH,
    GROUP_COLUMNS,
    GroupUsage,
    WidthCurve,
    group_label,
    trained_submodels,
    usage_by,
    varies,
    width_accuracy_rows,
    width_curves,
)

SECTION_ID = "submodels"
TITLE = "Sub-models: compute and accuracy by width"
TITLE_OTHERS = "Compute by precision and density"
# What each grouping column is called in headings and the terminal.
WHAT: dict[str, str] = {
    "width": "sub-model width",
    "precision": "arithmetic precision",
    "density": "weight density (share of weights trained)",
}


def submodel_name(config: Mapping[str, Any]) -> str:
    """``submodel.name`` as the run recorded it ("none" where the config predates it)."""
    part = config.get("submodel")
    name = part.get("name") if isinstance(part, Mapping) else None
    return "none" if name is None else str(name)


def _share(part: float, whole: float) -> str:
    return f"{part / whole:.1%}" if whole > 0 else "n/a"


def _cell(metric: str, value: float | int | None, text: str) -> str:
    raw = "null" if value is None or not math.isfinite(value) else repr(value)
    return f"<td class='num' data-metric='{metric}' data-value='{raw}'>{escape(text)}</td>"


def usage_table(
    column: str, groups: Sequence[GroupUsage], final_accuracy: Mapping[float, float | None]
) -> str:
    """One row per value of ``column``: work, compute energy, bytes and carbon, with each
    value's share of the run's client compute energy and client carbon; for widths, the
    final accuracy of that width's slice of the global model."""
    total_j = sum(g.compute_j for g in groups)
    total_g = sum(g.carbon_g for g in groups)
    k_j, u_j = energy_unit(*(g.compute_j for g in groups))
    k_g, u_g = carbon_unit(*(g.carbon_g for g in groups))
    heads = [
        WHAT[column].split(" (")[0],
        "client rounds (aggregated)",
        "samples",
        "FLOPs",
        f"compute energy ({u_j})",
        "share of compute",
        "MB up",
        "MB down",
        f"client carbon ({u_g})",
        "share of carbon",
    ]
    with_accuracy = column == "width"
    if with_accuracy:
        heads.append("final accuracy of its slice")
    head = "".join(
        f"<th class='num'>{escape(h)}</th>" if i else f"<th>{escape(h)}</th>"
        for i, h in enumerate(heads)
    )
    rows = []
    for g in groups:
        key = "null" if g.key is None else escape(str(g.key))
        cells = [
            f"<td>{escape(group_label(column, g.key))}</td>",
            _cell("client_rounds", g.client_rounds, f"{g.client_rounds:,} ({g.aggregated:,})"),
            _cell("samples", g.samples, f"{g.samples:,}"),
            _cell("flops", g.flops, format_large(g.flops)),
            _cell("compute_j", g.compute_j, plain_number(g.compute_j * k_j)),
            _cell(
                "compute_share",
                g.compute_j / total_j if total_j else None,
                _share(g.compute_j, total_j),
            ),
            _cell("bytes_up", g.bytes_up, plain_number(g.bytes_up / 1e6)),
            _cell("bytes_down", g.bytes_down, plain_number(g.bytes_down / 1e6)),
            _cell("carbon_g", g.carbon_g, plain_number(g.carbon_g * k_g)),
            _cell(
                "carbon_share",
                g.carbon_g / total_g if total_g else None,
                _share(g.carbon_g, total_g),
            ),
        ]
        if with_accuracy:
            acc = final_accuracy.get(g.key) if isinstance(g.key, float) else None
            cells.append(
                _cell("final_accuracy", acc, "n/a" if acc is None else f"{acc * 100:.2f}%")
            )
        rows.append(f"<tr data-group='{column}' data-key='{key}'>{''.join(cells)}</tr>")
    return (
        f"<div class='scroll'><table data-usage='{column}'><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def width_label(width: float) -> str:
    return "full model (width 1)" if width == 1.0 else f"width {width:g} slice"


def width_figure(curves: Sequence[WidthCurve]) -> str:
    """Each width's accuracy against the run's cumulative carbon, one line per width."""
    runs = [
        plots.RunCurve(width_label(c.width), c.cum_carbon_g, c.accuracy, math.nan) for c in curves
    ]
    return plots.curves_figure(
        runs,
        "width-accuracy",
        "Accuracy of each sub-model width against cumulative carbon",
        "Accuracy of each width's slice vs cumulative carbon",
    )


def _lead(run: RunData) -> str:
    sm = run.config.get("submodel")
    sm = sm if isinstance(sm, Mapping) else {}
    widths = sm.get("widths")
    listed = ", ".join(f"{float(w):g}" for w in widths) if isinstance(widths, list) else "?"
    return (
        f"<p class='lead'>Sub-models <strong>{escape(submodel_name(run.config))}</strong> "
        f"(widths {escape(listed)}, choice {escape(str(sm.get('choice', '?')))}): each client "
        "trained the width-scaled slice of the global model it was given, so its FLOPs, "
        "bytes and energy are that slice's. Client rounds include those not aggregated (their "
        "work still counts); carbon is the clients' operational and embodied carbon (the "
        "server's is in the breakdown).</p>"
    )


def _grouped(conn: sqlite3.Connection) -> dict[str, list[GroupUsage]]:
    """The grouping columns along which this run's work differed, with their groups."""
    out: dict[str, list[GroupUsage]] = {}
    for column in GROUP_COLUMNS:
        groups = usage_by(conn, column)
        if groups is not None and varies(groups):
            out[column] = groups
    return out


def submodel_section(run: RunData) -> Section | None:
    """The per-width tables and curves of a run that trained sub-models, and its work per
    precision and per density where those varied; None for a run where every client
    trained the full model in one precision, dense (nothing to split)."""
    conn = run.conn
    grouped = _grouped(conn)
    sub = trained_submodels(conn)
    if not sub and not grouped:
        return None
    parts: list[str] = []
    if sub:
        s: RoundSeries = round_series(conn)
        curves = width_curves(conn, s)
        finals = {c.width: c.final_accuracy for c in curves}
        parts.append(_lead(run))
        groups = grouped.get("width") or usage_by(conn, "width") or []
        parts.append(usage_table("width", groups, finals))
        if width_accuracy_rows(conn) is None:
            parts.append(
                note(
                    "Each width's own accuracy was not recorded by this run (its ledger "
                    "predates rounds.width_accuracy): only the full model's curve is shown.",
                    recorded="no",
                )
            )
        parts.append(
            figure(
                width_figure(curves),
                f"Test accuracy after each {run.step} (from {run.step} 1) of the full model "
                "and of each narrower width's slice of it, against the run's cumulative "
                "carbon (clients and server, operational and embodied).",
            )
        )
    for column in ("precision", "density"):
        if column in grouped:
            parts.append(f"<h3>By {escape(WHAT[column])}</h3>")
            parts.append(usage_table(column, grouped[column], {}))
    return (SECTION_ID, TITLE if sub else TITLE_OTHERS, "".join(parts))


def usage_line(column: str, groups: Sequence[GroupUsage]) -> str:
    """One grouping in one line for the terminal: each value's share of the client compute
    energy and of the client rounds."""
    total_j = sum(g.compute_j for g in groups)
    total_n = sum(g.client_rounds for g in groups)
    return "; ".join(
        f"{group_label(column, g.key)}: {_share(g.compute_j, total_j)} of compute energy, "
        f"{_share(g.client_rounds, total_n)} of client rounds"
        for g in groups
    )


def terminal_rows(conn: sqlite3.Connection, full_accuracy: float | None) -> list[tuple[str, str]]:
    """(label, text) rows for the terminal summary: the compute split per width, precision
    and density where the run's work differed, and each width's final accuracy (the full
    model's is ``full_accuracy``, the run's final accuracy)."""
    grouped = _grouped(conn)
    if "width" not in grouped and trained_submodels(conn):  # one width below 1 for all
        grouped = {"width": usage_by(conn, "width") or [], **grouped}
    rows = [(f"compute by {column}", usage_line(column, g)) for column, g in grouped.items()]
    per_round = width_accuracy_rows(conn)
    if per_round:
        last = {w: a for w, a in per_round[-1].items() if w != FULL_WIDTH}
        if full_accuracy is not None:
            last[FULL_WIDTH] = full_accuracy
        rows.append(
            (
                "accuracy by width",
                ", ".join(
                    f"{group_label('width', w)}: {last[w]:.4f}" for w in sorted(last, reverse=True)
                )
                + " (each width's slice of the final model)",
            )
        )
    return rows
