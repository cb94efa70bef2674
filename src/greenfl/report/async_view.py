"""The run report's section on an asynchronous run (issue 30, ``engine.mode = "async"``):
how stale the updates were. Every client update is a ``client_rounds`` row with the model
version it trained from and its staleness (server steps applied between that version and
the step that took it); the section counts them, for the aggregated updates and for all."""

from __future__ import annotations

import math
from collections.abc import Mapping
from html import escape
from typing import Any

from greenfl.report.html_parts import num
from greenfl.report.page import Section, figure, note
from greenfl.report.run_data import RunData
from greenfl.report.staleness import StalenessHistogram, staleness_figure, staleness_histogram

SECTION_ID = "staleness"
TITLE = "Asynchronous run: staleness of the updates"


def _setting(config: Mapping[str, Any], section: str, key: str) -> str:
    """A config value as the run recorded it, for the lead ("?" where it is absent: the
    report does not fill in defaults, which live in greenfl.config)."""
    part = config.get(section)
    value = part.get(key) if isinstance(part, Mapping) else None
    return "?" if value is None else str(value)


def _lead(run: RunData, steps: int) -> str:
    c = run.config
    strategy = _setting(c, "strategy", "name")
    weighting = _setting(c, "async", "staleness")
    return (
        "<p class='lead'>An asynchronous run (strategy "
        f"<strong>{escape(strategy)}</strong>, up to {escape(_setting(c, 'async', 'concurrency'))} "
        f"clients training at once, buffer of {escape(_setting(c, 'async', 'buffer_size'))} "
        f"updates, staleness weighting {escape(weighting)}). Each of its {steps} server steps "
        "applied the updates that had arrived; an update's staleness is the number of server "
        "steps applied between the model version it trained from and the step that took it "
        '(0: trained on the current model). Elsewhere in this report a "round" of the '
        "ledger is a server step.</p>"
    )


def _summary_table(h: StalenessHistogram) -> str:
    rows = []
    for aggregated_only, label in ((True, "aggregated updates"), (False, "all updates")):
        n = h.total(aggregated_only)
        mean = h.mean(aggregated_only)
        top = h.max(aggregated_only)
        fresh = h.counts(aggregated_only).get(0, 0)
        key = "aggregated" if aggregated_only else "all"
        rows.append(
            f"<tr data-updates='{key}'><td>{label}</td>"
            f"<td class='num' data-metric='staleness_{key}_count' data-value='{n}'>{n:,}</td>"
            f"<td class='num' data-metric='staleness_{key}_mean' "
            f"data-value='{'null' if math.isnan(mean) else repr(mean)}'>{num(mean, 3)}</td>"
            f"<td class='num' data-metric='staleness_{key}_max' "
            f"data-value='{'null' if top is None else top}'>{num(top)}</td>"
            f"<td class='num'>{f'{fresh / n:.0%}' if n else 'n/a'}</td></tr>"
        )
    head = "".join(
        f"<th class='num'>{escape(t)}</th>" if i else f"<th>{escape(t)}</th>"
        for i, t in enumerate(("updates", "count", "mean staleness", "max staleness", "fresh (0)"))
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _counts_table(h: StalenessHistogram) -> str:
    """Every staleness value that occurs, exactly (the figure may bin them)."""
    rows = "".join(
        f"<tr data-staleness='{v}' data-all='{h.all_updates[v]}' "
        f"data-aggregated='{h.aggregated.get(v, 0)}'><td class='num'>{v}</td>"
        f"<td class='num'>{h.all_updates[v]:,}</td><td class='num'>{h.aggregated.get(v, 0):,}</td>"
        f"<td class='num'>{h.all_updates[v] - h.aggregated.get(v, 0):,}</td></tr>"
        for v in h.values()
    )
    head = "".join(
        f"<th class='num'>{t}</th>" for t in ("staleness", "all", "aggregated", "not aggregated")
    )
    return (
        "<details><summary>Updates per staleness value</summary><div class='scroll'>"
        f"<table data-staleness-counts><thead><tr>{head}</tr></thead><tbody>{rows}</tbody>"
        "</table></div></details>"
    )


def staleness_section(run: RunData) -> Section | None:
    """The staleness histogram and its mean and maximum, for an async run; None for a
    synchronous one (its updates are all fresh: nothing to show)."""
    if not run.asynchronous:
        return None
    h = staleness_histogram(run.conn)
    if h is None:
        return (
            SECTION_ID,
            TITLE,
            note(
                "Staleness not recorded by this run (its ledger was written by an older "
                "greenfl, before client_rounds.staleness).",
                recorded="no",
            ),
        )
    steps = int(run.conn.execute("SELECT COUNT(*) FROM rounds").fetchone()[0])
    if not h.all_updates:
        return (SECTION_ID, TITLE, _lead(run, steps) + note("No update recorded its staleness."))
    unrecorded = (
        note(
            f"{h.unrecorded} updates have no staleness recorded (rows written before ledger "
            "schema 5) and are left out.",
            recorded="partly",
        )
        if h.unrecorded
        else ""
    )
    caption = (
        "Client updates per staleness value; the lower part of each bar was aggregated, the "
        "upper part was not (its work still counts in the footprint)."
    )
    body = (
        _lead(run, steps)
        + unrecorded
        + _summary_table(h)
        + figure(staleness_figure(h), caption)
        + _counts_table(h)
    )
    return (SECTION_ID, TITLE, body)
