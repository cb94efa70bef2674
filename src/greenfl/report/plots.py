"""The report's figures, each a function from table data to an inline SVG string. Every axis
names its unit; every component has its colour and hatch from ``style``; bars carry direct
labels so the figures read without colour."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from greenfl.report.headline import format_duration
from greenfl.report.style import (
    COMPONENTS,
    INK,
    RUN_COLORS,
    RUN_DASHES,
    RUN_MARKERS,
    STATUSES,
    Look,
    carbon_scale,
    energy_scale,
    time_scale,
)
from greenfl.report.svg import NOTE_PX, Figure, Swatch, fmt, text_width_px
from greenfl.report.tables import Breakdown, GroupCarbon, Participation, RoundSeries
from greenfl.report.world import IntensityCurves

WIDTH_PX = 864.0  # 9 inches at 96 dpi


def _swatch(look: Look) -> Swatch:
    return Swatch(look.label, look.color, look.hatch)


def _pct(values: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None else v * 100 for v in values]


def _top(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return max(finite, default=0.0)


def _with_start(xs: list[float], ys: list[float], initial: float) -> tuple[list[float], ...]:
    """Prepend round 0 (x = 0, the initial accuracy) where it was measured."""
    if math.isfinite(initial):
        return [0.0, *xs], [initial * 100, *ys]
    return xs, ys


def accuracy_figure(s: RoundSeries, initial_accuracy: float, target_accuracy: float | None) -> str:
    """Accuracy against cumulative carbon and against simulated time."""
    fig = Figure("accuracy", "Accuracy against cumulative carbon and simulated time", WIDTH_PX, 318)
    k_c, u_c = carbon_scale(_top(s.cum_carbon_g))
    k_t, u_t = time_scale(_top(s.end_s))
    acc = _pct(s.accuracy)
    for i, (x, label, title) in enumerate(
        (
            (
                [v * k_c for v in s.cum_carbon_g],
                f"cumulative carbon ({u_c})",
                "Accuracy vs cumulative carbon",
            ),
            ([v * k_t for v in s.end_s], f"simulated time ({u_t})", "Accuracy vs simulated time"),
        )
    ):
        xs, ys = _with_start(x, acc, initial_accuracy)
        ax = fig.panel(72 + i * 400, 32, 350, 222).limits((0.0, _top(xs) * 1.02), (0.0, 100.0))
        ax.frame(title, label, "test accuracy (%)" if i == 0 else "")
        ax.line(xs, ys, COMPONENTS["compute"].color, marker="o", every=max(1, len(xs) // 40))
        if target_accuracy is not None:
            ax.hline(target_accuracy * 100, label=f"target {target_accuracy * 100:g}%")
    return fig.svg()


def _share(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def split_figure(b: Breakdown) -> str:
    """Where the energy and the carbon went: one 100% bar each."""
    k_e, u_e = energy_scale(b.total_j)
    k_c, u_c = carbon_scale(b.total_g)
    ops = b.compute_j + b.comm_j
    bars = (
        (
            f"energy\n{fmt(b.total_j * k_e)} {u_e}",
            b.total_j,
            {"compute": b.compute_j, "comm": b.comm_j, "server": b.server_j},
        ),
        (
            f"carbon\n{fmt(b.total_g * k_c)} {u_c}",
            b.total_g,
            {
                "compute": b.client_operational_g * _share(b.compute_j, ops),
                "comm": b.client_operational_g * _share(b.comm_j, ops),
                "server": b.server_g,
                "embodied": b.embodied_g,
            },
        ),
    )
    left = 16 + max(text_width_px(name) for name, _, _ in bars)
    fig = Figure("split", "Shares of energy and carbon by component", WIDTH_PX, 190)
    ax = fig.panel(left, 32, WIDTH_PX - left - 190, 110).limits((0.0, 100.0), (-0.5, 1.5))
    ax.y_down = True
    ax.frame(
        "Where the energy and the carbon went",
        "share of the run's total (%)",
        categories=[name for name, _, _ in bars],
    )
    for y, (_name, total, parts) in enumerate(bars):
        x = 0.0
        for key, value in parts.items():
            w = value / total * 100 if total else 0.0
            look = COMPONENTS[key]
            ax.box(x, x + w, y - 0.38, y + 0.38, look.color, look.hatch)
            if w >= 7:
                ax.boxed_label(x + w / 2, y, f"{look.label.split(' (')[0]}\n{w:.0f}%")
            x += w
    fig.legend([_swatch(COMPONENTS[k]) for k in COMPONENTS], WIDTH_PX - 180, 44)
    return fig.svg()


def round_breakdown_figure(s: RoundSeries, step: str = "round") -> str:
    """Carbon per round, stacked: compute, communication, server, embodied. ``step`` names
    a round ("server step" in an async run, where the updates a step took are its rows)."""
    k, unit = carbon_scale(_top(s.carbon_g))
    fig = Figure("rounds", f"Carbon per {step}, stacked by component", WIDTH_PX, 318)
    x_hi = (max(s.rounds) if s.rounds else 1) + 0.6
    x_lo = 0.4 if len(s.rounds) <= 60 else (min(s.rounds) if s.rounds else 0) - 0.6
    ax = fig.panel(76, 32, WIDTH_PX - 100, 200)
    ax.limits((x_lo, x_hi), (0.0, _top(s.carbon_g) * k * 1.05 or 1.0))
    ax.frame(f"Carbon per {step} by component", step, f"carbon per {step} ({unit})", x_integer=True)
    width = 0.85 if len(s.rounds) <= 60 else 1.0  # hundreds of rounds: touching columns
    series = (
        ("compute", s.compute_g),
        ("comm", s.comm_g),
        ("server", s.server_g),
        ("embodied", s.embodied_g),
    )
    bottom = [0.0] * len(s.rounds)
    for key, values in series:
        look = COMPONENTS[key]
        for i, (r, v) in enumerate(zip(s.rounds, values, strict=True)):
            ax.box(
                r - width / 2, r + width / 2, bottom[i], bottom[i] + v * k, look.color, look.hatch
            )
            bottom[i] += v * k
    fig.legend([_swatch(COMPONENTS[key]) for key, _ in series], 76, 300, ncols=4)
    return fig.svg()


def _bar_groups(
    fig: Figure,
    names: Sequence[str],
    stacks: Sequence[tuple[Look, Sequence[float]]],
    notes: Sequence[str],
    title: str,
    xlabel: str,
    slot: int,
    head_room: float,
) -> None:
    """One of the two side-by-side panels of horizontal stacked bars, a note at each end."""
    half = WIDTH_PX / 2
    left = slot * half + 16 + max([text_width_px(n) for n in names] or [0.0])
    totals = [sum(v[i] for _, v in stacks) for i in range(len(names))]
    ax = fig.panel(left, 32, half - (left - slot * half) - 16, 24.0 * max(len(names), 1))
    ax.limits((0.0, (max(totals, default=0.0) or 1.0) * head_room), (-0.5, len(names) - 0.5))
    ax.y_down = True
    ax.frame(title, xlabel, categories=names)
    for i, total in enumerate(totals):
        x = 0.0
        for look, values in stacks:
            ax.box(x, x + values[i], i - 0.3, i + 0.3, look.color, look.hatch)
            x += values[i]
        ax.label(total, i, f" {notes[i]}")


def _two_panel_height(rows: int) -> float:
    return 32 + 24.0 * max(rows, 1) + 80


def groups_figure(regions: Sequence[GroupCarbon], devices: Sequence[GroupCarbon]) -> str:
    """Client carbon by grid region and by device class (cr = client-rounds)."""
    rows = max(len(regions), len(devices), 1)
    height = _two_panel_height(rows)
    fig = Figure("groups", "Client carbon by region and by device class", WIDTH_PX, height)
    k, unit = carbon_scale(max([g.total_g for g in [*regions, *devices]] or [0.0]))
    keys = ("compute", "comm", "embodied")
    for slot, (groups, title) in enumerate(
        ((regions, "By grid region"), (devices, "By device class"))
    ):
        stacks = [(COMPONENTS[key], [getattr(g, f"{key}_g") * k for g in groups]) for key in keys]
        totals = [sum(v[i] for _, v in stacks) for i in range(len(groups))]
        notes = [f"{fmt(t)} ({g.client_rounds} cr)" for t, g in zip(totals, groups, strict=True)]
        _bar_groups(
            fig,
            [g.name for g in groups],
            stacks,
            notes,
            title,
            f"client carbon ({unit})",
            slot,
            1.45,
        )
    legend = [_swatch(COMPONENTS[key]) for key in keys]
    fig.legend(legend, WIDTH_PX / 2 - 230, height - 14, ncols=3)
    return fig.svg()


def participation_figure(by_region: Participation, by_device: Participation) -> str:
    """Rounds per client of each group, split into aggregated and not aggregated."""
    rows = max(len(by_region.groups), len(by_device.groups), 1)
    height = _two_panel_height(rows)
    fig = Figure("participation", "Participation per client group", WIDTH_PX, height)
    for slot, (p, title) in enumerate(
        ((by_region, "By grid region"), (by_device, "By device class"))
    ):
        groups = p.groups
        done = [g.completed / g.clients if g.clients else 0.0 for g in groups]
        missed = [g.not_aggregated / g.clients if g.clients else 0.0 for g in groups]
        notes = []
        for g in groups:
            jain = "n/a" if math.isnan(g.jain) else f"{g.jain:.2f}"
            notes.append(f"{g.clients} client{'s' if g.clients != 1 else ''}, J={jain}")
        stacks = [(STATUSES["completed"], done), (STATUSES["not_aggregated"], missed)]
        _bar_groups(
            fig,
            [g.name for g in groups],
            stacks,
            notes,
            title,
            "rounds per client of the group (count)",
            slot,
            1.7,
        )
    legend = [_swatch(STATUSES[key]) for key in STATUSES]
    fig.legend(legend, WIDTH_PX / 2 - 300, height - 14, ncols=2)
    return fig.svg()


def _run_swatch(i: int, label: str) -> Swatch:
    """Run or region ``i``'s line look: colour and dash cycle together."""
    return Swatch(
        label,
        RUN_COLORS[i % len(RUN_COLORS)],
        line=True,
        dash=_dash(RUN_DASHES[i % len(RUN_DASHES)]),
    )


def _dash(style: object) -> str:
    """An SVG dash array for a run style: a named dash ('--') or (offset, on-off pattern)."""
    named = {"-": "", "--": "6,3", "-.": "6,3,1.5,3", ":": "1.5,2.5"}
    if isinstance(style, str):
        return named.get(style, "")
    _offset, pattern = style  # type: ignore[misc]
    return ",".join(f"{1.5 * v:g}" for v in pattern)


def intensity_figure(
    curves: IntensityCurves,
    regions: Sequence[str],
    round_start_s: Sequence[float],
    round_end_s: Sequence[float],
    step: str = "round",
) -> str:
    """Grid intensity of ``regions`` (recorded by the run) over simulated time, the rounds
    (``step``: what a round is called, "server step" in an async run) marked."""
    fig = Figure(
        "intensity", "Carbon intensity of the main regions over simulated time", WIDTH_PX, 326
    )
    t_s = [float(v) for v in curves.t_s]
    k, unit = time_scale(max(t_s, default=0.0))
    t = [v * k for v in t_s]
    series = {name: curves.regions[name].ci_g_per_kwh for name in regions}
    legend = []
    for i, name in enumerate(series):
        label = f"{name} {curves.legend_label(name)}"
        label += " (server)" if name == curves.server_region else ""
        legend.append(_run_swatch(i, label))
    if round_start_s:
        legend.append(
            Swatch(f"{step} starts ({len(round_start_s)} {step}s, shaded)", INK, line=True)
        )
    legend_w = max([text_width_px(s.label, NOTE_PX) for s in legend] or [0.0]) + 44
    ax = fig.panel(76, 32, WIDTH_PX - 76 - legend_w - 30, 222)
    lo = min([min(v) for v in series.values() if v] or [0.0])
    hi = max([max(v) for v in series.values() if v] or [1.0])
    pad = (hi - lo) * 0.08 or 10.0
    ax.limits((0.0, (t[-1] if t else 1.0) * 1.06), (max(0.0, lo - pad), hi + pad))
    ax.frame(
        f"Carbon intensity of the main grids, {step}s marked",
        f"simulated time since {curves.start_utc:%Y-%m-%d %H:%M} UTC ({unit})",
        "grid carbon intensity (gCO2e/kWh)",
    )
    if round_start_s:
        r0, r1 = round_start_s[0] * k, round_end_s[-1] * k
        ax.band(r0, r1)
        run_s = round_end_s[-1] - round_start_s[0]
        ax.label(
            r1,
            ax.y_hi - pad / 2,
            f"run: {len(round_start_s)} {step}s in {format_duration(run_s)}",
            dx=6,
        )
    ends: list[tuple[float, float, str, str]] = []
    for i, (name, ci) in enumerate(series.items()):
        color = RUN_COLORS[i % len(RUN_COLORS)]
        ax.line(t, ci, color, dash=_dash(RUN_DASHES[i % len(RUN_DASHES)]))
        if t and ci:
            ends.append((t[-1], ci[-1], name, color))
    ax.end_labels(ends)  # regions on similar grids end close together (IN and ZA)
    if round_start_s:
        ax.ticks_at([v * k for v in round_start_s], ax.y_lo)
    fig.legend(legend, WIDTH_PX - legend_w - 14, 44)
    return fig.svg()


@dataclass(frozen=True)
class RunCurve:
    name: str
    cum_carbon_g: list[float]
    accuracy: list[float | None]
    initial_accuracy: float


def overlay_figure(runs: Sequence[RunCurve]) -> str:
    """Several runs on the same axes: accuracy against cumulative carbon."""
    return curves_figure(
        runs,
        "overlay",
        "Accuracy against cumulative carbon for several runs",
        "Accuracy vs cumulative carbon, runs overlaid",
    )


def curves_figure(runs: Sequence[RunCurve], uid: str, title: str, panel_title: str) -> str:
    """Accuracy against cumulative carbon, one line per curve (a run, or one sub-model
    width of a run), each a ``data-series`` group named as in the legend."""
    fig = Figure(uid, title, WIDTH_PX, 364)
    top = max([max(r.cum_carbon_g) for r in runs if r.cum_carbon_g] or [0.0])
    k, unit = carbon_scale(top)
    legend = [_run_swatch(i, r.name) for i, r in enumerate(runs)]
    legend_w = max([text_width_px(s.label, NOTE_PX) for s in legend] or [0.0]) + 44
    ax = fig.panel(76, 32, WIDTH_PX - 76 - legend_w - 30, 268)
    ax.limits((0.0, top * k * 1.15 or 1.0), (0.0, 100.0))
    ax.frame(panel_title, f"cumulative carbon ({unit})", "test accuracy (%)")
    ends: list[tuple[float, float, str, str]] = []
    for i, r in enumerate(runs):
        xs, ys = _with_start([v * k for v in r.cum_carbon_g], _pct(r.accuracy), r.initial_accuracy)
        color = RUN_COLORS[i % len(RUN_COLORS)]
        ax.line(
            xs,
            ys,
            color,
            dash=_dash(RUN_DASHES[i % len(RUN_DASHES)]),
            width=1.5,
            marker=RUN_MARKERS[i % len(RUN_MARKERS)],
            every=max(1, len(xs) // 12),
            series=r.name,
        )
        if xs and math.isfinite(ys[-1]):
            ends.append((xs[-1], ys[-1], r.name, color))
    ax.end_labels(ends)  # runs often end at almost the same accuracy
    fig.legend(legend, WIDTH_PX - legend_w - 14, 44)
    return fig.svg()
