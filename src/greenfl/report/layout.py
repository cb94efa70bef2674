"""The arithmetic of laying out a chart's text: estimated text widths, round tick values and
their labels, and labels moved apart so none overlaps another. Pure functions; the SVG
writer (greenfl.report.svg) draws with them."""

from __future__ import annotations

import math
from collections.abc import Sequence

TICK_PX = 12.0
TITLE_PX = 13.5
NOTE_PX = 11.0
CHAR_EM = 0.58  # mean advance of a sans-serif character, in font sizes


def text_width_px(text: str, size_px: float = TICK_PX) -> float:
    return max((len(line) for line in text.split("\n")), default=0) * size_px * CHAR_EM


def nice_ticks(lo: float, hi: float, target: int = 5, integer: bool = False) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) covering [lo, hi];
    ``integer``: whole numbers only (an axis of rounds has no round 1.5)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(target, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    if integer:
        step = max(step, 1.0)
    first = math.ceil(lo / step - 1e-9) * step
    count = int(math.floor((hi - first) / step + 1e-9)) + 1
    return [round(first + i * step, 12) for i in range(count)]


def tick_label(value: float, ticks: Sequence[float]) -> str:
    """``value`` with as many decimals as the tick step needs (steps are 1, 2 or 5 x 10^k)."""
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    digits = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{value:,.{digits}f}"


def spread_apart(
    ys: Sequence[float], gap: float, lo: float = -math.inf, hi: float = math.inf
) -> list[float]:
    """Where to put labels wanted at ``ys`` (one axis, any order) so that no two are nearer
    than ``gap``: labels that would collide form a stack centred on where they wanted to be,
    kept within [lo, hi] where it fits. Labels that do not collide stay where they are."""
    order = sorted(range(len(ys)), key=lambda i: ys[i])
    stacks: list[list[int]] = []

    def top(stack: list[int]) -> float:
        span = gap * (len(stack) - 1)
        centre = sum(ys[i] for i in stack) / len(stack)
        return max(lo, min(centre - span / 2, hi - span))

    for i in order:
        stacks.append([i])
        # Merging can make the merged stack reach the one before it: merge again.
        while len(stacks) > 1 and top(stacks[-1]) < top(stacks[-2]) + gap * len(stacks[-2]):
            last = stacks.pop()
            stacks[-1].extend(last)
    out = [0.0] * len(ys)
    for stack in stacks:
        t = top(stack)
        for k, i in enumerate(stack):
            out[i] = t + k * gap
    return out
