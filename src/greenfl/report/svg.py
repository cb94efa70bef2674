"""A small SVG chart writer for the report: panels with linear axes, lines, stacked bars,
bands and labels, as plain text. The report draws a handful of simple charts; a plotting
library would spend far longer laying them out than the run took to summarise, and
this keeps ``import greenfl.report`` light.

Text stays text (selectable, searchable, small); its width is estimated from the font size
to lay out margins, which is why labels get generous room rather than exact fits."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

from greenfl.report.layout import (
    NOTE_PX,
    TICK_PX,
    TITLE_PX,
    nice_ticks,
    spread_apart,
    text_width_px,
    tick_label,
)

__all__ = ["NOTE_PX", "TICK_PX", "TITLE_PX", "Figure", "Panel", "Swatch", "fmt", "nice_ticks"]
__all__ += ["spread_apart", "text_width_px", "tick_label"]

FONT = "DejaVu Sans, Liberation Sans, Arial, sans-serif"
INK = "#222222"
MUTED = "#444444"
AXIS = "#888888"
GRID = "#dddddd"

# SVG pattern tiles for the hatch codes in style.py: white strokes over the fill colour.
_HATCH_PATHS = {
    "//": "M-2,2 l4,-4 M0,8 l8,-8 M6,10 l4,-4",
    "\\\\": "M-2,6 l4,4 M0,0 l8,8 M6,-2 l4,4",
    "--": "M0,4 h8",
    "xx": "M0,0 l8,8 M0,8 l8,-8",
}


def fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def _num(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".") if math.isfinite(v) else "0"


def _text(
    x: float,
    y: float,
    s: str,
    size: float = NOTE_PX,
    anchor: str = "start",
    color: str = INK,
    weight: str = "normal",
    rotate: bool = False,
    baseline: str = "middle",
) -> str:
    lines = s.split("\n")
    dy0 = -(len(lines) - 1) * 0.6 * size
    spans = "".join(
        f'<tspan x="{_num(x)}" dy="{_num(dy0 if i == 0 else 1.2 * size)}">{escape(line)}</tspan>'
        for i, line in enumerate(lines)
    )
    turn = f' transform="rotate(-90 {_num(x)} {_num(y)})"' if rotate else ""
    bold = ' font-weight="bold"' if weight == "bold" else ""
    return (
        f'<text x="{_num(x)}" y="{_num(y)}" font-size="{_num(size)}" text-anchor="{anchor}" '
        f'dominant-baseline="{baseline}" fill="{color}"{bold}{turn}>{spans}</text>'
    )


@dataclass(frozen=True)
class Swatch:
    """A legend entry: a filled box (optionally hatched) or a line (with a dash pattern)."""

    label: str
    color: str
    hatch: str = ""
    line: bool = False
    dash: str = ""


@dataclass
class Panel:
    """One set of axes: the plot box in pixels and the data limits mapped onto it."""

    fig: Figure
    left: float
    top: float
    width: float
    height: float
    x_lo: float = 0.0
    x_hi: float = 1.0
    y_lo: float = 0.0
    y_hi: float = 1.0
    y_down: bool = False  # categories: row 0 at the top
    parts: list[str] = field(default_factory=list)

    def limits(self, x: tuple[float, float], y: tuple[float, float]) -> Panel:
        self.x_lo, self.x_hi = x if x[1] > x[0] else (x[0], x[0] + 1.0)
        self.y_lo, self.y_hi = y if y[1] > y[0] else (y[0], y[0] + 1.0)
        return self

    def px(self, x: float) -> float:
        return self.left + (x - self.x_lo) / (self.x_hi - self.x_lo) * self.width

    def py(self, y: float) -> float:
        f = (y - self.y_lo) / (self.y_hi - self.y_lo)
        return self.top + (f if self.y_down else 1.0 - f) * self.height

    def frame(
        self,
        title: str,
        xlabel: str,
        ylabel: str = "",
        categories: Sequence[str] | None = None,
        y_ticks: bool = True,
        x_integer: bool = False,
    ) -> None:
        """Grid, axes, tick labels, title and axis labels; call after ``limits``.
        ``x_integer``: ticks at whole numbers only (rounds, counts)."""
        p = self.parts
        b = self.top + self.height
        xt = nice_ticks(self.x_lo, self.x_hi, integer=x_integer)
        for v in xt:
            x = self.px(v)
            p.append(f'<path d="M{_num(x)},{_num(self.top)}V{_num(b)}" stroke="{GRID}"/>')
            p.append(_text(x, b + 14, tick_label(v, xt), TICK_PX, "middle", MUTED))
        if categories is not None:
            for i, name in enumerate(categories):
                p.append(_text(self.left - 6, self.py(i), name, TICK_PX, "end", MUTED))
        elif y_ticks:
            yt = nice_ticks(self.y_lo, self.y_hi)
            for v in yt:
                y = self.py(v)
                p.append(
                    f'<path d="M{_num(self.left)},{_num(y)}H{_num(self.left + self.width)}" '
                    f'stroke="{GRID}"/>'
                )
                p.append(_text(self.left - 6, y, tick_label(v, yt), TICK_PX, "end", MUTED))
        p.append(
            f'<path d="M{_num(self.left)},{_num(self.top)}V{_num(b)}H'
            f'{_num(self.left + self.width)}" fill="none" stroke="{AXIS}"/>'
        )
        p.append(
            _text(self.left, self.top - 12, title, TITLE_PX, "start", INK, "bold", baseline="auto")
        )
        p.append(_text(self.left + self.width / 2, b + 34, xlabel, TICK_PX, "middle"))
        if ylabel:
            p.append(
                _text(
                    self.left - 48,
                    self.top + self.height / 2,
                    ylabel,
                    TICK_PX,
                    "middle",
                    rotate=True,
                )
            )

    def line(
        self,
        xs: Sequence[float],
        ys: Sequence[float],
        color: str,
        dash: str = "",
        width: float = 1.6,
        marker: str = "",
        every: int = 1,
        series: str = "",
    ) -> None:
        """A polyline through the finite points; NaN or None leave gaps. ``series`` names
        the line and its markers as one group (``data-series``), for readers of the SVG."""
        at = len(self.parts)
        segs: list[list[tuple[float, float]]] = [[]]
        for x, y in zip(xs, ys, strict=True):
            if y is None or not (math.isfinite(x) and math.isfinite(y)):
                segs.append([])
            else:
                segs[-1].append((self.px(x), self.py(y)))
        d = " ".join("M" + " L".join(f"{_num(a)},{_num(b)}" for a, b in seg) for seg in segs if seg)
        if d:
            dashes = f' stroke-dasharray="{dash}"' if dash else ""
            self.parts.append(
                f'<path d="{d}" fill="none" stroke="{color}" stroke-width="{width}"'
                f'{dashes} stroke-linejoin="round"/>'
            )
        if marker:
            pts = [pt for seg in segs for pt in seg][:: max(1, every)]
            self.parts.extend(self.fig.marker(marker, x, y, color) for x, y in pts)
        if series:
            self.parts.insert(at, f'<g data-series="{escape(series)}">')
            self.parts.append("</g>")

    def box(self, x0: float, x1: float, y0: float, y1: float, color: str, hatch: str = "") -> None:
        """A filled rectangle in data coordinates (a bar or a bar's segment)."""
        a, b = sorted((self.px(x0), self.px(x1)))
        c, d = sorted((self.py(y0), self.py(y1)))
        if b - a <= 0 or d - c <= 0:
            return
        fill = self.fig.fill(color, hatch)
        self.parts.append(
            f'<rect x="{_num(a)}" y="{_num(c)}" width="{_num(b - a)}" height="{_num(d - c)}" '
            f'fill="{fill}" stroke="white" stroke-width="0.6"/>'
        )

    def band(self, x0: float, x1: float, color: str = "#999999", opacity: float = 0.18) -> None:
        a, b = self.px(x0), max(self.px(x1), self.px(x0) + 2)
        self.parts.append(
            f'<rect x="{_num(a)}" y="{_num(self.top)}" width="{_num(b - a)}" '
            f'height="{_num(self.height)}" fill="{color}" fill-opacity="{opacity}"/>'
        )

    def hline(self, y: float, color: str = INK, dash: str = "5,3", label: str = "") -> None:
        yy = self.py(y)
        self.parts.append(
            f'<path d="M{_num(self.left)},{_num(yy)}H{_num(self.left + self.width)}" '
            f'stroke="{color}" stroke-dasharray="{dash}"/>'
        )
        if label:
            self.parts.append(_text(self.left + self.width - 2, yy - 7, label, NOTE_PX, "end"))

    def ticks_at(self, xs: Sequence[float], y: float, color: str = INK) -> None:
        """Short vertical marks at ``xs`` (round starts, say) on the line ``y``."""
        yy = self.py(y)
        d = " ".join(f"M{_num(self.px(x))},{_num(yy - 6)}v12" for x in xs)
        if d:
            self.parts.append(f'<path d="{d}" stroke="{color}" stroke-width="1.2"/>')

    def label(
        self, x: float, y: float, s: str, anchor: str = "start", color: str = INK, dx: float = 0
    ) -> None:
        self.parts.append(_text(self.px(x) + dx, self.py(y), s, NOTE_PX, anchor, color))

    def end_labels(self, ends: Sequence[tuple[float, float, str, str]]) -> list[float]:
        """A label at the end (x, y) of each line, (x, y, text, colour) in data
        coordinates. Labels that would overlap (lines ending close together) are moved
        apart, each with a short leader to its line's end; returns the labels' pixel ys."""
        gap = 1.2 * NOTE_PX  # one line of text
        wanted = [self.py(y) for _, y, _, _ in ends]
        placed = spread_apart(wanted, gap, self.top, self.top + self.height)
        for (x, _, text, color), y0, y1 in zip(ends, wanted, placed, strict=True):
            x0 = self.px(x)
            moved = abs(y1 - y0) > 0.5
            if moved:
                self.parts.append(
                    f'<path d="M{_num(x0)},{_num(y0)}L{_num(x0 + 6)},{_num(y1)}" stroke="{color}"/>'
                )
            self.parts.append(
                _text(x0 + (6 if moved else 0), y1, f" {text}", NOTE_PX, "start", color)
            )
        return placed

    def boxed_label(self, x: float, y: float, s: str) -> None:
        """Black text on a white box, centred at data point (x, y): reads over any hatch."""
        cx, cy = self.px(x), self.py(y)
        w = text_width_px(s, NOTE_PX) + 6
        h = (s.count("\n") + 1) * 1.2 * NOTE_PX + 2
        self.parts.append(
            f'<rect x="{_num(cx - w / 2)}" y="{_num(cy - h / 2)}" width="{_num(w)}" '
            f'height="{_num(h)}" rx="3" fill="white"/>'
        )
        self.parts.append(_text(cx, cy, s, NOTE_PX, "middle"))


@dataclass
class Figure:
    """An SVG canvas of panels and legends; ``svg()`` writes it out."""

    uid: str
    title: str
    width: float
    height: float
    panels: list[Panel] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    _defs: dict[str, tuple[str, str]] = field(default_factory=dict)

    def panel(self, left: float, top: float, width: float, height: float) -> Panel:
        p = Panel(self, left, top, width, height)
        self.panels.append(p)
        return p

    def fill(self, color: str, hatch: str) -> str:
        """A fill: the plain colour, or a hatch pattern over it (defined once per figure)."""
        if not hatch:
            return color
        key = f"{color}{hatch}"
        if key not in self._defs:
            pid = f"{self.uid}-h{len(self._defs)}"
            self._defs[key] = (
                pid,
                f'<pattern id="{pid}" width="8" height="8" patternUnits="userSpaceOnUse">'
                f'<rect width="8" height="8" fill="{color}"/>'
                f'<path d="{_HATCH_PATHS[hatch]}" stroke="white" stroke-width="0.9"/></pattern>',
            )
        return f"url(#{self._defs[key][0]})"

    def marker(self, kind: str, x: float, y: float, color: str, r: float = 2.6) -> str:
        if kind == "s":
            return (
                f'<rect x="{_num(x - r)}" y="{_num(y - r)}" width="{_num(2 * r)}" '
                f'height="{_num(2 * r)}" fill="{color}"/>'
            )
        if kind == "^":
            return (
                f'<path d="M{_num(x)},{_num(y - r * 1.2)}l{_num(r)},{_num(r * 2)}'
                f'h{_num(-2 * r)}z" fill="{color}"/>'
            )
        if kind == "D":
            return (
                f'<path d="M{_num(x)},{_num(y - r * 1.3)}l{_num(r)},{_num(r * 1.3)}'
                f'l{_num(-r)},{_num(r * 1.3)}l{_num(-r)},{_num(-r * 1.3)}z" '
                f'fill="{color}"/>'
            )
        return f'<circle cx="{_num(x)}" cy="{_num(y)}" r="{_num(r)}" fill="{color}"/>'

    def legend(self, items: Sequence[Swatch], left: float, top: float, ncols: int = 1) -> None:
        """Entries in ``ncols`` columns from (left, top), each column as wide as its widest."""
        ncols = max(1, min(ncols, len(items)))
        rows = math.ceil(len(items) / ncols)
        x = left
        for c in range(ncols):
            col = items[c * rows : (c + 1) * rows]
            for r, it in enumerate(col):
                y = top + r * 18
                if it.line:
                    dash = f' stroke-dasharray="{it.dash}"' if it.dash else ""
                    self.extra.append(
                        f'<path d="M{_num(x)},{_num(y)}h22" stroke="{it.color}" '
                        f'stroke-width="2"{dash}/>'
                    )
                else:
                    self.extra.append(
                        f'<rect x="{_num(x)}" y="{_num(y - 6)}" width="22" height="12" '
                        f'fill="{self.fill(it.color, it.hatch)}"/>'
                    )
                self.extra.append(_text(x + 28, y, it.label, NOTE_PX))
            x += 40 + max(text_width_px(it.label, NOTE_PX) for it in col)

    def svg(self) -> str:
        safe = escape(self.title)
        defs = "".join(d for _, d in self._defs.values())
        body = "".join(part for p in self.panels for part in p.parts) + "".join(self.extra)
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_num(self.width)} '
            f'{_num(self.height)}" role="img" aria-label="{safe}" class="plot" '
            f'data-plot="{self.uid}" font-family="{FONT}"><title>{safe}</title>'
            f"<defs>{defs}</defs>{body}</svg>"
        )
