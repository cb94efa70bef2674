"""The run report's sections on the run's world and its clients: the grids' carbon intensity,
participation per client group, the final model's accuracy per region, and the
client-rounds that were not aggregated. Each reads the ledger (rows and meta) only; what an
older ledger did not record is said, not guessed."""

from __future__ import annotations

import json
from html import escape

from greenfl.report import plots
from greenfl.report.headline import format_carbon, format_energy
from greenfl.report.html_parts import num, table
from greenfl.report.page import Section, figure, note
from greenfl.report.run_data import RunData
from greenfl.report.tables import (
    STATUS_MEANING,
    RoundSeries,
    group_carbon,
    incident_kinds,
    incidents,
    participation,
)
from greenfl.report.world import (
    RecordError,
    carbon_sources,
    intensity_curves,
    population_groups,
)

MAIN_REGIONS = 5
INCIDENT_ROWS = 200
NOT_RECORDED = "not recorded by this run (its ledger was written by an older greenfl)"
# The meta key the end of a run writes (greenfl.engine.fairness; a test holds the two equal:
# the report does not import the engine).
REGION_ACCURACY_KEY = "region_accuracy"


def client_regions(run: RunData, recorded: list[str]) -> list[str]:
    """The regions with the most client carbon, at most MAIN_REGIONS, of those the run
    recorded a curve for."""
    return [g.name for g in group_carbon(run.conn, "region") if g.name in recorded][:MAIN_REGIONS]


def intensity_section(run: RunData, rounds: RoundSeries) -> Section:
    title = "Carbon intensity over simulated time"
    try:
        curves = intensity_curves(run.meta)
    except RecordError as exc:
        return ("intensity", title, note(f"Intensity curves unreadable: {exc}."))
    if curves is None:
        return ("intensity", title, note(f"Intensity curves {NOT_RECORDED}.", recorded="no"))
    top = client_regions(run, list(curves.regions))
    server = curves.server_region
    regions = top + ([server] if server not in top and server in curves.regions else [])
    svg = plots.intensity_figure(curves, regions, rounds.start_s, rounds.end_s, run.step)
    if curves.constant_g_per_kwh is not None:
        mode = f"constant {curves.constant_g_per_kwh:g} gCO2e/kWh"
    else:
        mode = "annual means" if curves.mode == "annual" else "each region's source in the legend"
    caption = (
        f"Intensity the accounting used ({mode}), as the run recorded it, for the "
        f"{len(top)} region{'s' if len(top) != 1 else ''} with the most client carbon and "
        f"the server's ({server}). At least one day is shown; the shaded band is the run, "
        f"ticks mark {run.step} starts."
    )
    try:
        sources = carbon_sources(run.meta)
    except RecordError as exc:
        sources = f"The live carbon sources' record is unreadable: {exc}."
    body = figure(svg, caption)
    if sources is not None:
        body = f"<p data-metric='ci_sources'>{escape(sources)}</p>" + body
    return ("intensity", title, body)


def participation_section(run: RunData) -> Section:
    title = "Participation per client group"
    try:
        groups = population_groups(run.meta)
    except RecordError:  # unreadable reads as unrecorded: the ledger's rows still count
        groups = None
    num_clients = (run.config.get("data") or {}).get("num_clients")
    population = int(num_clients) if isinstance(num_clients, int) else None
    sizes = groups or {}
    by_region = participation(run.conn, "region", sizes.get("region"), population)
    by_device = participation(run.conn, "device", sizes.get("device"), population)
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
        f"<p class='lead'>Clients that took part (an update aggregated at least once): "
        f"<strong data-metric='clients_distinct' data-value='{by_region.took_part}'>"
        f"{by_region.took_part}</strong> of {by_region.num_clients}. "
        f"Jain's fairness index of aggregated rounds over all "
        f"{by_region.num_clients} clients (never-selected clients count as zero): "
        f"<strong data-metric='jain_all' data-value='{by_region.jain_all!r}'>"
        f"{num(by_region.jain_all, 3)}</strong> (1 = everyone took part equally).</p>"
    )
    if groups is None:
        lead += note(
            f"The population's clients per region and device were {NOT_RECORDED}: the groups "
            "below hold only the clients selected at least once.",
            recorded="no",
        )
    body = (
        lead
        + figure(svg, "Bars: rounds per client of each group; J = Jain's index within the group.")
        + f"<details><summary>Participation table</summary>{group_table}</details>"
    )
    return ("participation", title, body)


def region_accuracies(meta: dict[str, str]) -> dict[str, tuple[float, int]] | None:
    """{region: (accuracy, clients evaluated)} as the run recorded them; None where it did
    not; RecordError where the record is not in the shape the run writes."""
    raw = meta.get(REGION_ACCURACY_KEY)
    if raw is None:
        return None
    try:
        out = {
            str(name): (float(v["accuracy"]), int(v["clients"]))
            for name, v in json.loads(raw).items()
        }
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise RecordError(f"meta {REGION_ACCURACY_KEY} is malformed: {exc}") from None
    if not all(0.0 <= acc <= 1.0 for acc, _ in out.values()):
        raise RecordError(f"meta {REGION_ACCURACY_KEY} holds an accuracy outside [0, 1]")
    return out


def region_accuracy_section(run: RunData) -> Section:
    """The final model on each region's clients' own test data, worst region first."""
    sid, title = "region-accuracy", "Accuracy per region"
    try:
        regions = region_accuracies(run.meta)
    except RecordError as exc:
        return (sid, title, note(f"Accuracy per region unreadable: {exc}."))
    if regions is None:
        text = (
            "Accuracy per region not recorded by this run (an older greenfl, or a run that "
            "ended before its final evaluation)."
        )
        return (sid, title, note(text, recorded="no"))
    if not regions:
        return (sid, title, note("No region's clients held test data.", recorded="empty"))
    try:
        sizes = (population_groups(run.meta) or {}).get("region", {})
    except RecordError:
        sizes = {}
    order = sorted(regions, key=lambda r: (regions[r][0], r))
    rows = [(r, f"{regions[r][0] * 100:.1f}%", regions[r][1], num(sizes.get(r))) for r in order]
    worst, best = order[0], order[-1]
    gap = regions[best][0] - regions[worst][0]
    lead = (
        "<p class='lead'>The final model on each region's clients' own test data (a seeded "
        "sample of each region's clients, at most 100 clients and 500 samples). Worst: "
        f"{escape(worst)} at {regions[worst][0] * 100:.1f}%, best: {escape(best)} at "
        f"{regions[best][0] * 100:.1f}%, a gap of "
        f"<strong data-metric='region_accuracy_gap' data-value='{gap!r}'>"
        f"{gap * 100:.1f} points</strong>. With data.region_skew a region's clients hold data of "
        "their own, and a region the training left out shows here.</p>"
    )
    headers = ("region", "accuracy", "clients evaluated", "clients in the region")
    return (sid, title, lead + table(headers, rows, {1, 2, 3}))


def incidents_section(run: RunData) -> Section:
    title = "Stragglers, drops and rejections"
    kinds = incident_kinds(run.conn)
    if not kinds:
        return (
            "incidents",
            title,
            "<p data-incidents='0'>Every selected client-round was aggregated.</p>",
        )
    # One unit per quantity in each table: that of the table's largest figure.
    scale_j = max(k.energy_j for k in kinds)
    scale_g = max(k.carbon_g for k in kinds)
    summary = table(
        ("status", "reason", "client-rounds", "energy", "carbon"),
        [
            (
                k.status,
                k.reason or STATUS_MEANING.get(k.status, "-"),
                k.count,
                format_energy(k.energy_j, scale_j),
                format_carbon(k.carbon_g, scale_g),
            )
            for k in kinds
        ],
        {2, 3, 4},
    )
    rows, total = incidents(run.conn, INCIDENT_ROWS)
    row_j = max((float(r["energy_j"]) for r in rows), default=0.0)  # type: ignore[arg-type]
    row_g = max((float(r["carbon_g"]) for r in rows), default=0.0)  # type: ignore[arg-type]
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
            "energy",
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
                num(r["active_s"]),  # type: ignore[arg-type]
                format_energy(r["energy_j"], row_j),  # type: ignore[arg-type]
                format_carbon(r["carbon_g"], row_g),  # type: ignore[arg-type]
            )
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
    return ("incidents", title, body)
