"""One look for every plot: the same colour *and* hatch for the same component everywhere
(Okabe-Ito colours, safe for colour-blind readers; the hatches keep them apart in grey),
units chosen by magnitude, and matplotlib settings for small, text-as-text SVG."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import matplotlib
from matplotlib.figure import Figure

from greenfl.core.units import S_PER_HOUR


@dataclass(frozen=True)
class Look:
    label: str
    color: str
    hatch: str


COMPONENTS: dict[str, Look] = {
    "compute": Look("client compute", "#0072B2", "//"),
    "comm": Look("communication", "#E69F00", "--"),
    "server": Look("server (x PUE)", "#009E73", "xx"),
    "embodied": Look("embodied", "#CC79A7", "\\\\"),
}

STATUSES: dict[str, Look] = {
    "completed": Look("aggregated", "#56B4E9", ""),
    "not_aggregated": Look(
        "not aggregated (straggler, dropped, rejected, failed)", "#D55E00", "//"
    ),
}

RUN_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
RUN_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
RUN_DASHES = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)), (0, (1, 1)))

INK = "#222222"
GRID = "#dddddd"

RC = {
    "svg.fonttype": "none",  # text stays text: smaller files, selectable, searchable
    "svg.hashsalt": "greenfl",  # deterministic ids
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Liberation Sans", "Arial", "sans-serif"],
    "font.size": 9.5,
    "axes.titlesize": 10.5,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.edgecolor": "#888888",
    "axes.labelcolor": INK,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": GRID,
    "grid.linewidth": 0.6,
    "xtick.color": "#444444",
    "ytick.color": "#444444",
    "legend.frameon": False,
    "hatch.linewidth": 0.8,
    "hatch.color": "white",
    "figure.dpi": 96,
}


@contextmanager
def plotting() -> Iterator[None]:
    with matplotlib.rc_context(RC):
        yield


def new_figure(width_in: float = 9.0, height_in: float = 3.4) -> Figure:
    # A bare Figure, not pyplot: no global state, no GUI backend.
    return Figure(figsize=(width_in, height_in), layout="constrained")


_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)
_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(url\(#|href="#)')


def to_svg(fig: Figure, uid: str, title: str) -> str:
    """The figure as an inline ``<svg>`` element: ids prefixed with ``uid`` so several
    figures can share one page, fixed size dropped so CSS scales it, and a title for
    screen readers."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = _METADATA.sub("", svg)  # RDF block with a date and external namespace URIs
    svg = _ID.sub(lambda m: f'id="{uid}-{m.group(1)}"', svg)
    svg = _REF.sub(lambda m: f"{m.group(1)}{uid}-", svg)
    head_end = svg.index(">")
    head = re.sub(r'\s(width|height)="[^"]*"', "", svg[:head_end])
    safe_title = title.replace("&", "&amp;").replace("<", "&lt;")
    head += f' role="img" aria-label="{safe_title}" class="plot" data-plot="{uid}"'
    return head + ">" + f"<title>{safe_title}</title>" + svg[head_end + 1 :]


def carbon_scale(max_g: float) -> tuple[float, str]:
    """(factor, unit) so that max_g * factor reads between 1 and 1000."""
    if max_g >= 1000:
        return 1e-3, "kgCO2e"
    if max_g >= 1 or max_g <= 0:
        return 1.0, "gCO2e"
    if max_g >= 1e-3:
        return 1e3, "mgCO2e"
    return 1e6, "µgCO2e"


def energy_scale(max_j: float) -> tuple[float, str]:
    if max_j >= 3.6e5:
        return 1 / 3.6e6, "kWh"
    if max_j >= 3600:
        return 1 / 3600, "Wh"
    return 1.0, "J"


def time_scale(max_s: float) -> tuple[float, str]:
    if max_s >= 2 * 86400:
        return 1 / 86400, "days"
    if max_s >= 2 * S_PER_HOUR:
        return 1 / S_PER_HOUR, "h"
    if max_s >= 120:
        return 1 / 60, "min"
    return 1.0, "s"
