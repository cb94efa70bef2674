"""The HTML report of one run: a single self-contained file (inline SVG and CSS, no script,
nothing fetched), written next to the ledger as ``report.html``."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any

from greenfl._version import __version__
from greenfl.core.errors import FleetError
from greenfl.report import plots
from greenfl.report.client_view import client_accuracy_section
from greenfl.report.equivalents import Equivalent, equivalents, humanize_distance_km
from greenfl.report.fleet_view import (
    client_groups,
    curve_window_s,
    fleet_config,
    fleet_from_json,
    intensity_curves,
)
from greenfl.report.headline import Metric, format_carbon, headline_metrics
from greenfl.report.html_parts import fleet_html, num, table
from greenfl.report.run_data import RunData, open_run
from greenfl.report.tables import (
    STATUS_MEANING,
    breakdown,
    group_carbon,
    incident_kinds,
    incidents,
    participation,
    round_series,
)

MAIN_REGIONS = 5
INCIDENT_ROWS = 200

CSS = """
:root { --ink:#1d2327; --muted:#5b6770; --line:#d9dee2; --bg:#f6f7f8; --card:#fff; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
       color:var(--ink); background:var(--bg); }
main { max-width: 1000px; margin: 0 auto; padding: 20px 24px 40px; }
header h1 { font-size: 22px; margin: 0 0 2px; }
header p { margin: 2px 0; color: var(--muted); }
h2 { font-size: 17px; margin: 28px 0 6px; padding-top: 6px; border-top: 1px solid var(--line); }
section > p.lead { margin: 0 0 8px; color: var(--muted); }
.cards { display:grid; grid-template-columns: repeat(auto-fill, minmax(180px, 1fr)); gap:10px;
         margin-top: 12px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px;
        padding:10px 12px; }
.card .label { font-size:12px; text-transform:uppercase; letter-spacing:.04em; color:var(--muted); }
.card .value { font-size:19px; font-weight:650; margin:2px 0; font-variant-numeric: tabular-nums; }
.card .note { font-size:12px; color:var(--muted); }
figure { margin: 6px 0 4px; background:var(--card); border:1px solid var(--line);
         border-radius:8px; padding:8px; }
figure svg.plot { width:100%; height:auto; display:block; }
figcaption { font-size:12px; color:var(--muted); padding: 4px 4px 0; }
table { border-collapse: collapse; width:100%; background:var(--card); font-size:12.5px;
        font-variant-numeric: tabular-nums; }
th, td { border-bottom:1px solid var(--line); padding:4px 8px; text-align:left;
         vertical-align:top; }
th { background:#eef1f3; font-weight:600; }
td.num, th.num { text-align:right; }
.scroll { max-height: 420px; overflow:auto; border:1px solid var(--line); border-radius:6px; }
ul.equiv { margin: 6px 0; padding-left: 18px; }
ul.equiv li { margin: 3px 0; }
.src { color: var(--muted); font-size: 12px; }
details { background:var(--card); border:1px solid var(--line); border-radius:6px;
          padding:6px 10px; margin: 6px 0; }
summary { cursor: pointer; font-weight:600; }
pre { font-size:12px; overflow:auto; max-height: 480px; margin: 6px 0; }
.pill { display:inline-block; padding:0 6px; border-radius:9px; background:#eef1f3;
        font-size:12px; }
nav { font-size: 13px; margin-top: 8px; }
nav a { color: var(--ink); margin-right: 10px; }
"""

Section = tuple[str, str, str]  # (id, title, inner html)


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


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


def format_equivalent(e: Equivalent) -> str:
    if e.unit == "km":
        v, unit = humanize_distance_km(e.value)
        return f"{v:.3g} {unit}"
    return f"{e.value:.3g} {e.unit}"


def _equivalents_html(eqs: Sequence[Equivalent]) -> str:
    items = "".join(
        f'<li data-equivalent="{escape(e.key)}" data-value="{e.value!r}">'
        f"<strong>{escape(format_equivalent(e))}</strong> {escape(e.label)} "
        f'<span class="pill">from {escape(e.basis)}</span><br>'
        f'<span class="src">source: {escape(e.source)}</span></li>'
        for e in eqs
    )
    return f'<ul class="equiv">{items}</ul>'


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
        + _equivalents_html(eqs)
    )
    return ("headline", "Headline numbers", body)


def _main_regions(run: RunData, server_region: str) -> list[str]:
    top = [g.name for g in group_carbon(run.conn, "region")[:MAIN_REGIONS]]
    return top + ([server_region] if server_region not in top else [])


def _intensity_section(run: RunData, s_rounds: Any) -> Section:
    try:
        fleet = fleet_from_json(run.fleet)
        cfg = fleet_config(run.config)
        regions = _main_regions(run, fleet.server.region)
        window = curve_window_s(float(run.summary["sim_time_s"]))
        curves = intensity_curves(fleet, cfg, regions, window)
    except FleetError as exc:
        return ("intensity", "Carbon intensity", f"<p>Not available: {escape(str(exc))}</p>")
    svg = plots.intensity_figure(curves, s_rounds.start_s, s_rounds.end_s, fleet.server.region)
    mode = (
        f"constant {cfg.ci_constant_g_per_kwh:g} gCO2e/kWh"
        if cfg.ci_constant_g_per_kwh is not None
        else ("annual means" if cfg.ci_mode == "annual" else "each region's source in the legend")
    )
    caption = (
        f"Intensity the accounting used ({mode}) for the {len(regions) - 1 or 1} regions with "
        "the most client carbon and the server's region. At least one day is shown; the shaded "
        "band is the run, ticks mark round starts."
    )
    return ("intensity", "Carbon intensity over simulated time", _figure(svg, caption))


def _participation_section(run: RunData) -> Section:
    num_clients = int((run.config.get("data") or {}).get("num_clients", 0)) or None
    groups: dict[str, list[str]] | None = None
    try:
        if num_clients:
            groups = client_groups(
                fleet_from_json(run.fleet), num_clients, int(run.config.get("seed", 0))
            )
    except FleetError:
        groups = None
    by_region = participation(run.conn, "region", groups and groups["region"], num_clients)
    by_device = participation(run.conn, "device", groups and groups["device"], num_clients)
    svg = plots.participation_figure(by_region, by_device)
    rows = [
        (p.column, g.name, g.clients, g.selected, g.completed, g.not_aggregated, num(g.jain, 3))
        for p in (by_region, by_device)
        for g in p.groups
    ]
    group_table = table(
        ("grouped by", "group", "clients", "selected", "aggregated", "not aggregated", "Jain"),
        rows,
        {2, 3, 4, 5, 6},
    )
    lead = (
        f"<p class='lead'>Jain's fairness index of aggregated rounds over all "
        f"{by_region.num_clients} clients (never-selected clients count as zero): "
        f"<strong data-metric='jain_all' data-value='{by_region.jain_all!r}'>"
        f"{num(by_region.jain_all, 3)}</strong> (1 = everyone took part equally).</p>"
    )
    body = (
        lead
        + _figure(svg, "Bars: rounds per client of each group; J = Jain's index within the group.")
        + f"<details><summary>Participation table</summary>{group_table}</details>"
    )
    return ("participation", "Participation per client group", body)


def _incidents_section(run: RunData) -> Section:
    kinds = incident_kinds(run.conn)
    if not kinds:
        return (
            "incidents",
            "Stragglers, drops and rejections",
            "<p data-incidents='0'>Every selected client-round was aggregated.</p>",
        )
    summary = table(
        ("status", "reason", "client-rounds", "energy (J)", "carbon"),
        [
            (
                k.status,
                k.reason or STATUS_MEANING.get(k.status, "-"),
                k.count,
                num(k.energy_j),
                format_carbon(k.carbon_g),
            )
            for k in kinds
        ],
        {2, 3, 4},
    )
    rows, total = incidents(run.conn, INCIDENT_ROWS)
    detail = table(
        (
            "round",
            "client",
            "device",
            "network",
            "region",
            "status",
            "reason",
            "active (s)",
            "energy (J)",
            "carbon",
        ),
        [
            (
                r["round"],
                r["client_id"],
                r["device"],
                r["network"],
                r["region"],
                r["status"],
                r["reason"] or STATUS_MEANING.get(str(r["status"]), "-"),
                num(r["active_s"]),
                num(r["energy_j"]),
                format_carbon(r["carbon_g"]),
            )  # type: ignore[arg-type]
            for r in rows
        ],
        {0, 1, 7, 8, 9},
    )
    more = f" (first {len(rows)} of {total}; all are in the ledger)" if total > len(rows) else ""
    body = (
        f"<p class='lead' data-incidents='{total}'>{total} client-rounds were not aggregated; "
        "their work still counts (wasted work is real).</p>"
        + summary
        + f"<details><summary>Each client-round{escape(more)}</summary>"
        f"<div class='scroll'>{detail}</div></details>"
    )
    return ("incidents", "Stragglers, drops and rejections", body)


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
            _figure(
                plots.accuracy_figure(s, run.initial_accuracy, target),
                "Test accuracy after each round (round 0: the untrained model).",
            ),
        )
    )
    sections.append(
        (
            "breakdown",
            "Where the carbon went",
            _figure(plots.split_figure(b), "Totals of the run by component.")
            + _figure(
                plots.round_breakdown_figure(s),
                "Client operational carbon is split between compute and communication in "
                "proportion to their energy; server carbon includes the PUE.",
            ),
        )
    )
    sections.append(
        (
            "groups",
            "Carbon by region and by device class",
            _figure(
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
    sections.append(_intensity_section(run, s))
    sections.append(_participation_section(run))
    sections.append(_incidents_section(run))
    for hook in extra:
        sec = hook(run)
        if sec is not None:
            sections.append(sec)
    sections.append(_config_section(run))
    return page(f"greenfl report: {run.name}", _run_header(run), sections)


def _run_header(run: RunData) -> str:
    created = f" &middot; started {escape(run.created_utc[:19])} UTC" if run.created_utc else ""
    return (
        f"<h1>greenfl run report: {escape(run.name)}</h1>"
        f"<p>{escape(str(run.path))} &middot; status {escape(run.status)}"
        f"{' &middot; ' + escape(run.stop_reason) if run.stop_reason else ''}{created}</p>"
    )


def page(title: str, header_html: str, sections: Sequence[Section]) -> str:
    nav = "".join(f'<a href="#{sid}">{escape(t)}</a>' for sid, t, _ in sections)
    body = "".join(
        f'<section id="{sid}"><h2>{escape(t)}</h2>{inner}</section>' for sid, t, inner in sections
    )
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        # No external resource of any kind may load: the file must work offline.
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body><main>"
        f"<header>{header_html}<nav>{nav}</nav></header>{body}"
        f"<footer><p class='src'>Made by greenfl {escape(__version__)} on {made}. "
        "Every number is read from the run's ledger.sqlite.</p></footer>"
        "</main></body></html>\n"
    )


def write_run_report(
    run_dir: str | Path,
    out: str | Path | None = None,
    extra: Sequence[SectionHook] | None = None,
) -> Path:
    """Write ``report.html`` into the run folder (or ``out``); return its path. ``extra``
    sections default to the federated-vs-centralised comparison."""
    from greenfl.report.centralised_view import centralised_section

    with open_run(run_dir) as run:
        text = render_run_report(run, (centralised_section,) if extra is None else extra)
        dest = Path(out) if out is not None else run.path / "report.html"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text, encoding="utf-8")
    return dest
