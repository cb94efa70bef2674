"""The report's figures, each a function from table data to an inline SVG string. Every axis
names its unit; every component has its colour and hatch from ``style``; bars carry direct
labels so the figures read without colour."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.axes import Axes

from greenfl.report.fleet_view import IntensityCurves
from greenfl.report.headline import format_duration
from greenfl.report.style import (
    COMPONENTS,
    INK,
    RUN_COLORS,
    RUN_DASHES,
    RUN_MARKERS,
    STATUSES,
    carbon_scale,
    energy_scale,
    new_figure,
    plotting,
    time_scale,
    to_svg,
)
from greenfl.report.tables import Breakdown, GroupCarbon, Participation, RoundSeries


def _style(look: Any, lw: float, label: str | None = "") -> dict[str, Any]:
    """One component's colour, hatch and legend label: the same look in every figure.
    ``label=""`` takes the look's own label; None leaves the artist out of the legend."""
    return {
        "color": look.color,
        "hatch": look.hatch,
        "edgecolor": "white",
        "lw": lw,
        "label": look.label if label == "" else label,
    }


def _pct(values: Sequence[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v * 100 for v in values], dtype=np.float64)


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def accuracy_figure(s: RoundSeries, initial_accuracy: float, target_accuracy: float | None) -> str:
    """Accuracy against cumulative carbon and against simulated time."""
    with plotting():
        fig = new_figure(9.0, 3.3)
        ax_c, ax_t = fig.subplots(1, 2, sharey=True)
        cum = np.array(s.cum_carbon_g)
        k_c, u_c = carbon_scale(float(cum.max()) if len(cum) else 0.0)
        end = np.array(s.end_s)
        k_t, u_t = time_scale(float(end.max()) if len(end) else 0.0)
        acc = _pct(s.accuracy)
        x0 = np.isfinite(initial_accuracy)
        for ax, x, unit, title in (
            (ax_c, cum * k_c, u_c, "Accuracy vs cumulative carbon"),
            (ax_t, end * k_t, u_t, "Accuracy vs simulated time"),
        ):
            xs = np.concatenate([[0.0], x]) if x0 else x
            ys = np.concatenate([[initial_accuracy * 100], acc]) if x0 else acc
            ax.plot(
                xs,
                ys,
                color=COMPONENTS["compute"].color,
                marker="o",
                markersize=2.5,
                markevery=max(1, len(xs) // 40),
                lw=1.6,
            )
            if target_accuracy is not None:
                ax.axhline(target_accuracy * 100, color=INK, lw=1, ls="--")
                ax.annotate(
                    f"target {target_accuracy * 100:g}%",
                    (1, target_accuracy * 100),
                    xycoords=("axes fraction", "data"),
                    ha="right",
                    va="bottom",
                    fontsize=8.5,
                )
            ax.set_title(title)
            ax.set_xlabel(
                f"cumulative carbon ({unit})" if ax is ax_c else f"simulated time ({unit})"
            )
            ax.set_xlim(left=0)
        ax_c.set_ylabel("test accuracy (%)")
        ax_c.set_ylim(0, 100)
        return to_svg(fig, "accuracy", "Accuracy against cumulative carbon and simulated time")


def split_figure(b: Breakdown) -> str:
    """Where the energy and the carbon went: one 100% bar each."""
    with plotting():
        fig = new_figure(9.0, 1.9)
        ax = fig.subplots()
        k_e, u_e = energy_scale(b.total_j)
        k_c, u_c = carbon_scale(b.total_g)
        bars = (
            (
                f"energy\n{_fmt(b.total_j * k_e)} {u_e}",
                b.total_j,
                {"compute": b.compute_j, "comm": b.comm_j, "server": b.server_j},
            ),
            (
                f"carbon\n{_fmt(b.total_g * k_c)} {u_c}",
                b.total_g,
                {
                    "compute": b.client_operational_g * _share(b.compute_j, b.compute_j + b.comm_j),
                    "comm": b.client_operational_g * _share(b.comm_j, b.compute_j + b.comm_j),
                    "server": b.server_g,
                    "embodied": b.embodied_g,
                },
            ),
        )
        for y, (_label, total, parts) in enumerate(bars):
            left = 0.0
            for key, value in parts.items():
                w = value / total * 100 if total else 0.0
                look = COMPONENTS[key]
                ax.barh(y, w, left=left, **_style(look, 0.8, "" if y == 1 else None))
                if w >= 7:
                    ax.text(
                        left + w / 2,
                        y,
                        f"{look.label.split(' (')[0]}\n{w:.0f}%",
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="black",
                        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none"},
                    )
                left += w
        ax.set_yticks([0, 1], [b[0] for b in bars])
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.set_xlabel("share of the run's total (%)")
        ax.grid(axis="y", visible=False)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8.5)
        ax.set_title("Where the energy and the carbon went")
        return to_svg(fig, "split", "Shares of energy and carbon by component")


def _share(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def round_breakdown_figure(s: RoundSeries) -> str:
    """Carbon per round, stacked: compute, communication, server, embodied."""
    with plotting():
        fig = new_figure(9.0, 3.2)
        ax = fig.subplots()
        totals = np.array(s.carbon_g)
        k, unit = carbon_scale(float(totals.max()) if len(totals) else 0.0)
        x = np.array(s.rounds, dtype=np.float64)
        bottom = np.zeros(len(x))
        bars = len(x) <= 60
        for key, values in (
            ("compute", s.compute_g),
            ("comm", s.comm_g),
            ("server", s.server_g),
            ("embodied", s.embodied_g),
        ):
            v = np.array(values) * k
            look = COMPONENTS[key]
            if bars:
                ax.bar(x, v, bottom=bottom, width=0.85, **_style(look, 0.3))
            else:  # hundreds of rounds: a stepped area stays light and legible
                ax.fill_between(
                    x,
                    bottom,
                    bottom + v,
                    step="mid",
                    color=look.color,
                    hatch=look.hatch,
                    hatchcolor="white",
                    edgecolor="white",
                    lw=0,
                    label=look.label,
                )
            bottom = bottom + v
        ax.set_xlabel("round")
        ax.set_ylabel(f"carbon per round ({unit})")
        ax.set_xlim(0.4 if bars else x.min() if len(x) else 0, (x.max() if len(x) else 1) + 0.6)
        ax.legend(ncols=4, loc="lower left", bbox_to_anchor=(0, 1.0), fontsize=8.5)
        ax.set_title("Carbon per round by component", pad=22)
        return to_svg(fig, "rounds", "Carbon per round, stacked by component")


def _group_axes(ax: Axes, groups: Sequence[GroupCarbon], k: float, unit: str, title: str) -> None:
    names = [g.name for g in groups]
    y = np.arange(len(groups))
    left = np.zeros(len(groups))
    for key in ("compute", "comm", "embodied"):
        v = np.array([getattr(g, f"{key}_g") for g in groups]) * k
        look = COMPONENTS[key]
        ax.barh(y, v, left=left, **_style(look, 0.5))
        left += v
    for yi, g, tot in zip(y, groups, left, strict=True):
        ax.text(tot, yi, f" {_fmt(tot)} ({g.client_rounds} cr)", va="center", fontsize=8)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel(f"client carbon ({unit})")
    ax.set_xlim(0, (left.max() if len(left) else 1) * 1.35 or 1)
    ax.grid(axis="y", visible=False)
    ax.set_title(title)


def groups_figure(regions: Sequence[GroupCarbon], devices: Sequence[GroupCarbon]) -> str:
    """Client carbon by grid region and by device class (cr = client-rounds)."""
    with plotting():
        rows = max(len(regions), len(devices), 1)
        fig = new_figure(9.0, 0.9 + 0.24 * rows)
        ax_r, ax_d = fig.subplots(1, 2)
        top = max([g.total_g for g in [*regions, *devices]] or [0.0])
        k, unit = carbon_scale(top)
        _group_axes(ax_r, regions, k, unit, "By grid region")
        _group_axes(ax_d, devices, k, unit, "By device class")
        handles, labels = ax_r.get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=8.5)
        return to_svg(fig, "groups", "Client carbon by region and by device class")


def intensity_figure(
    curves: IntensityCurves,
    round_start_s: Sequence[float],
    round_end_s: Sequence[float],
    server_region: str,
) -> str:
    """Grid intensity of the main regions over simulated time, the rounds marked."""
    with plotting():
        fig = new_figure(9.0, 3.4)
        ax = fig.subplots()
        span = float(curves.t_s.max())
        k, unit = time_scale(span)
        t = curves.t_s * k
        for i, (name, ci) in enumerate(curves.ci_g_per_kwh.items()):
            label = curves.labels.get(name, name)
            label = f"{name} {label}" + (" (server)" if name == server_region else "")
            ax.plot(
                t,
                ci,
                color=RUN_COLORS[i % len(RUN_COLORS)],
                ls=RUN_DASHES[i % len(RUN_DASHES)],
                lw=1.6,
                label=label,
            )
            ax.annotate(
                f" {name}",
                (t[-1], ci[-1]),
                fontsize=8,
                va="center",
                color=RUN_COLORS[i % len(RUN_COLORS)],
            )
        if round_start_s:
            r0, r1 = round_start_s[0] * k, round_end_s[-1] * k
            ax.axvspan(r0, max(r1, r0 + span * k * 0.004), color="#999999", alpha=0.18, lw=0)
            ymin, ymax = ax.get_ylim()
            ax.plot(
                np.array(round_start_s) * k,
                np.full(len(round_start_s), ymin),
                ls="none",
                marker="|",
                markersize=9,
                color=INK,
                label=f"round starts ({len(round_start_s)} rounds, shaded)",
            )
            ax.set_ylim(ymin, ymax)
            run_s = round_end_s[-1] - round_start_s[0]
            ax.annotate(
                f"run: {len(round_start_s)} rounds in {format_duration(run_s)}",
                (r1, ymax),
                xytext=(6, -4),
                textcoords="offset points",
                fontsize=8,
                va="top",
                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "#999999"},
            )
        ax.set_xlabel(f"simulated time since {curves.start_utc:%Y-%m-%d %H:%M} UTC ({unit})")
        ax.set_ylabel("grid carbon intensity (gCO2e/kWh)")
        ax.set_xlim(0, t[-1] * 1.06)
        fig.legend(loc="outside right upper", fontsize=8.5)
        ax.set_title("Carbon intensity of the main grids, rounds marked")
        return to_svg(fig, "intensity", "Carbon intensity of the main regions over simulated time")


def _participation_axes(ax: Axes, p: Participation, title: str) -> None:
    groups = p.groups
    y = np.arange(len(groups))
    done = np.array([g.completed / g.clients if g.clients else 0.0 for g in groups])
    missed = np.array([g.not_aggregated / g.clients if g.clients else 0.0 for g in groups])
    for key, v, left in (("completed", done, 0 * done), ("not_aggregated", missed, done)):
        look = STATUSES[key]
        ax.barh(y, v, left=left, **_style(look, 0.5))
    for yi, g, tot in zip(y, groups, done + missed, strict=True):
        jain = "n/a" if np.isnan(g.jain) else f"{g.jain:.2f}"
        clients = f"{g.clients} client" + ("s" if g.clients != 1 else "")
        ax.text(tot, yi, f" {clients}, J={jain}", va="center", fontsize=8)
    ax.set_yticks(y, [g.name for g in groups])
    ax.invert_yaxis()
    ax.set_xlabel("rounds per client of the group (count)")
    ax.set_xlim(0, max(float((done + missed).max()) if len(y) else 1.0, 1e-9) * 1.6)
    ax.grid(axis="y", visible=False)
    ax.set_title(title)


def participation_figure(by_region: Participation, by_device: Participation) -> str:
    with plotting():
        rows = max(len(by_region.groups), len(by_device.groups), 1)
        fig = new_figure(9.0, 0.9 + 0.24 * rows)
        ax_r, ax_d = fig.subplots(1, 2)
        _participation_axes(ax_r, by_region, "By grid region")
        _participation_axes(ax_d, by_device, "By device class")
        handles, labels = ax_r.get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=8.5)
        return to_svg(fig, "participation", "Participation per client group")


@dataclass(frozen=True)
class RunCurve:
    name: str
    cum_carbon_g: list[float]
    accuracy: list[float | None]
    initial_accuracy: float


def spread_labels(
    ends: Sequence[tuple[float, float, str, str]], gap: float = 4.0, top: float = 100.0
) -> list[float]:
    """The y of each end-of-line label, moved apart so no two are nearer than ``gap``
    (accuracy points): runs often end at almost the same accuracy, and their labels
    printed at their ends overlap into one unreadable blot."""
    order = sorted(range(len(ends)), key=lambda i: ends[i][1])
    ys = [ends[i][1] for i in order]
    for j in range(1, len(ys)):
        ys[j] = max(ys[j], ys[j - 1] + gap)
    overflow = ys[-1] - top if ys else 0.0
    if overflow > 0:  # pushed past the top: shift the stack down, keeping the gaps
        ys = [y - overflow for y in ys]
    out = [0.0] * len(ends)
    for i, y in zip(order, ys, strict=True):
        out[i] = y
    return out


def overlay_figure(runs: Sequence[RunCurve]) -> str:
    """Several runs on the same axes: accuracy against cumulative carbon."""
    with plotting():
        fig = new_figure(9.0, 3.8)
        ax = fig.subplots()
        top = max([max(r.cum_carbon_g) for r in runs if r.cum_carbon_g] or [0.0])
        k, unit = carbon_scale(top)
        ends: list[tuple[float, float, str, str]] = []
        for i, r in enumerate(runs):
            x = np.array(r.cum_carbon_g) * k
            y = _pct(r.accuracy)
            if np.isfinite(r.initial_accuracy):
                x = np.concatenate([[0.0], x])
                y = np.concatenate([[r.initial_accuracy * 100], y])
            color = RUN_COLORS[i % len(RUN_COLORS)]
            ax.plot(
                x,
                y,
                color=color,
                ls=RUN_DASHES[i % len(RUN_DASHES)],
                marker=RUN_MARKERS[i % len(RUN_MARKERS)],
                markersize=3.5,
                markevery=max(1, len(x) // 12),
                lw=1.5,
                label=r.name,
            )
            if len(x):
                ends.append((float(x[-1]), float(y[-1]), r.name, color))
        for (x_end, y_end, name, color), y_label in zip(ends, spread_labels(ends), strict=True):
            ax.annotate(
                f" {name}",
                (x_end, y_end),
                xytext=(x_end, y_label),
                fontsize=8,
                color=color,
                va="center",
                arrowprops=None if y_label == y_end else {"arrowstyle": "-", "color": color},
            )
        ax.set_xlabel(f"cumulative carbon ({unit})")
        ax.set_ylabel("test accuracy (%)")
        ax.set_xlim(left=0, right=top * k * 1.15 or 1)
        ax.set_ylim(0, 100)
        fig.legend(loc="outside right upper", fontsize=8.5)
        ax.set_title("Accuracy vs cumulative carbon, runs overlaid")
        return to_svg(fig, "overlay", "Accuracy against cumulative carbon for several runs")
