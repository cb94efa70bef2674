"""The HTML report of one run, written next to the ledger as ``report.html``: the headline
numbers, the figures and tables, every one read from the run's ledger and the analysis files
beside it."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path

from greenfl.report import plots
from greenfl.report.async_view import staleness_section
from greenfl.report.centralised_view import centralised_section
from greenfl.report.client_view import client_accuracy_section
from greenfl.report.equivalents import Equivalent, describe, equivalents
from greenfl.report.headline import Metric, headline_metrics
from greenfl.report.html_parts import fleet_html
from greenfl.report.page import Section, figure, page
from greenfl.report.run_data import RunData, open_run
from greenfl.report.run_sections import (
    incidents_section,
    intensity_section,
    participation_section,
    region_accuracy_section,
)
from greenfl.report.submodel_view import submodel_section
from greenfl.report.tables import breakdown, energy_basis, group_carbon, round_series


def metric_card(m: Metric) -> str:
    attrs = f'data-metric="{escape(m.key)}"'
    if m.summary_key is not None:
        attrs += f' data-summary-key="{escape(m.summary_key)}"'
    attrs += f' data-value="{"null" if m.value is None else escape(repr(m.value))}"'
    return (
        f'<div class="card"><div class="label">{escape(m.label)}</div>'
        f'<div class="value" {attrs}>{escape(m.display)}</div>'
        f'<div class="note">{escape(m.note)}</div></div>'
    )


def equivalents_html(eqs: Sequence[Equivalent]) -> str:
    items = []
    for e in eqs:
        amount, rest = describe(e)
        items.append(
            f'<li data-equivalent="{escape(e.key)}" data-value="{e.value!r}">'
            f"<strong>{escape(amount)}</strong> {escape(rest)} "
            f'<span class="pill">from {escape(e.basis)}</span><br>'
            f'<span class="src">source: {escape(e.source)}</span></li>'
        )
    return f'<ul class="equiv">{"".join(items)}</ul>'


def _server_basis(run: RunData) -> str:
    """Says whether the server's footprint was modelled (repeatable) or measured on the host
    (moves with its load): the reader of a number should know which it is."""
    row = run.conn.execute(
        "SELECT COUNT(*), SUM(server_measured = 1), SUM(server_flops) FROM rounds"
    ).fetchone()
    rounds, measured, flops = int(row[0] or 0), int(row[1] or 0), float(row[2] or 0.0)
    if rounds == 0:
        return ""
    if measured:
        text = (
            f"Server time measured on this host in {measured} of {rounds} rounds: those "
            "server figures move with the host's load and are not repeatable."
        )
    else:
        text = (
            f"Server time modelled from its counted work ({flops:.3g} FLOPs of aggregation "
            "and evaluation): the same config and seed give the same figures."
        )
    basis = "measured" if measured else "model"
    return f'<p class="lead" data-server-basis="{basis}">{escape(text)}</p>'


def _headline_section(run: RunData) -> Section:
    metrics = headline_metrics(run)
    s = run.summary
    cards = "".join(metric_card(m) for m in metrics)
    eqs = equivalents(float(s["carbon_g"]["total"]), float(s["energy_j"]["total"]))
    body = (
        f'<div class="cards">{cards}</div>' + _server_basis(run) + "<h3>In everyday terms</h3>"
        "<p class='lead'>The run's total carbon (operational + embodied) and total energy.</p>"
        + equivalents_html(eqs)
    )
    return ("headline", "Headline numbers", body)


def _config_section(run: RunData) -> Section:
    cfg = escape(json.dumps(run.config, indent=2, sort_keys=True))
    body = (
        "<details><summary>Resolved config</summary>"
        f"<pre data-config>{cfg}</pre></details>"
        f"<details><summary>Fleet: {escape(str(run.fleet.get('path', '')))}</summary>"
        f"{fleet_html(run.fleet)}</details>"
    )
    return ("config", "Config and fleet", body)


SectionHook = Callable[[RunData], "Section | None"]


def render_run_report(run: RunData, extra: Sequence[SectionHook] = ()) -> str:
    """The whole page, as a string."""
    s = round_series(run.conn)
    b = breakdown(run.conn)
    sections: list[Section] = [_headline_section(run)]
    target = run.summary.get("target_accuracy")
    sections.append(
        (
            "accuracy",
            "Accuracy against carbon and time",
            figure(
                plots.accuracy_figure(s, run.initial_accuracy, target),
                _accuracy_caption(run),
            ),
        )
    )
    staleness = staleness_section(run)
    if staleness is not None:
        sections.append(staleness)
    submodels = submodel_section(run)
    if submodels is not None:
        sections.append(submodels)
    sections.append(
        (
            "breakdown",
            "Where the carbon went",
            figure(plots.split_figure(b), "Totals of the run by component.")
            + figure(
                plots.round_breakdown_figure(s, run.step),
                "Client operational carbon is split between compute and communication in "
                "proportion to their energy; server carbon includes the PUE. " + energy_basis(b),
            ),
        )
    )
    sections.append(
        (
            "groups",
            "Carbon by region and by device class",
            figure(
                plots.groups_figure(
                    group_carbon(run.conn, "region"), group_carbon(run.conn, "device")
                ),
                "Client carbon only (the server's is in the breakdown above); "
                "cr = client-rounds, including those not aggregated.",
            ),
        )
    )
    client_acc = client_accuracy_section(run.conn)
    if client_acc is not None:
        sections.append(client_acc)
    sections.append(intensity_section(run, s))
    sections.append(participation_section(run))
    sections.append(region_accuracy_section(run))
    sections.append(incidents_section(run))
    for hook in extra:
        sec = hook(run)
        if sec is not None:
            sections.append(sec)
    sections.append(_config_section(run))
    return page(f"greenfl report: {run.name}", _run_header(run), sections)


def _accuracy_caption(run: RunData) -> str:
    if run.asynchronous:
        return (
            "Test accuracy after each server step (step 0: the untrained model), against the "
            "carbon of the updates taken so far and the simulated time at the step's end."
        )
    return "Test accuracy after each round (round 0: the untrained model)."


def _run_header(run: RunData) -> str:
    created = f" &middot; started {escape(run.created_utc[:19])} UTC" if run.created_utc else ""
    return (
        f"<h1>greenfl run report: {escape(run.name)}</h1>"
        f"<p>{escape(str(run.path))} &middot; status {escape(run.status)}"
        f"{' &middot; ' + escape(run.stop_reason) if run.stop_reason else ''}{created}</p>"
    )


def write_run_report(
    run_dir: str | Path,
    out: str | Path | None = None,
    extra: Sequence[SectionHook] | None = None,
) -> Path:
    """Write ``report.html`` into the run folder (or ``out``); return its path. ``extra``
    sections default to the federated-vs-centralised comparison."""
    with open_run(run_dir) as run:
        text = render_run_report(run, (centralised_section,) if extra is None else extra)
        dest = Path(out) if out is not None else run.path / "report.html"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text, encoding="utf-8")
    return dest
