"""The staleness of an async run's updates (issue 30), read from the ledger: counts per
staleness value over all client updates and over the aggregated ones, the bars those make,
and the figure. A ``client_rounds`` row's ``staleness`` is the number of server steps
applied between the model version it trained from and the step that took it."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from greenfl.ledger.schema import AGGREGATED_SQL
from greenfl.report.plots import WIDTH_PX
from greenfl.report.run_mode import has_column
from greenfl.report.style import STATUSES
from greenfl.report.svg import Figure, Swatch


@dataclass(frozen=True)
class StalenessHistogram:
    """Client updates per staleness value (server steps applied between the model version
    an update trained from and the step that took it), over all updates and over the
    aggregated ones. ``unrecorded``: updates whose staleness is NULL (rows written before
    ledger schema 5)."""

    all_updates: dict[int, int]
    aggregated: dict[int, int]
    unrecorded: int = 0

    def counts(self, aggregated_only: bool) -> dict[int, int]:
        return self.aggregated if aggregated_only else self.all_updates

    def values(self) -> list[int]:
        """The staleness values that occur, in order."""
        return sorted(self.all_updates)

    def total(self, aggregated_only: bool) -> int:
        return sum(self.counts(aggregated_only).values())

    def mean(self, aggregated_only: bool) -> float:
        """Mean staleness per update (NaN for no updates)."""
        c = self.counts(aggregated_only)
        n = sum(c.values())
        return sum(v * k for v, k in c.items()) / n if n else float("nan")

    def max(self, aggregated_only: bool) -> int | None:
        c = [v for v, k in self.counts(aggregated_only).items() if k > 0]
        return max(c) if c else None


def staleness_histogram(conn: sqlite3.Connection) -> StalenessHistogram | None:
    """Counts per staleness value from ``client_rounds``; None for a ledger whose table has
    no ``staleness`` column (written before it was recorded)."""
    if not has_column(conn, "client_rounds", "staleness"):
        return None
    all_updates: dict[int, int] = {}
    aggregated: dict[int, int] = {}
    unrecorded = 0
    for value, n, done in conn.execute(
        "SELECT staleness, COUNT(*), SUM(" + AGGREGATED_SQL + ") FROM client_rounds "
        "GROUP BY staleness ORDER BY staleness"
    ):
        if value is None:
            unrecorded = int(n)
            continue
        all_updates[int(value)] = int(n)
        if done:
            aggregated[int(value)] = int(done)
    return StalenessHistogram(all_updates, aggregated, unrecorded)


@dataclass(frozen=True)
class StalenessBin:
    """Updates whose staleness is in [lo, hi]."""

    lo: int
    hi: int
    all_updates: int
    aggregated: int


def staleness_bins(h: StalenessHistogram, max_bars: int) -> list[StalenessBin]:
    """The histogram as at most ``max_bars`` bars of equal width from staleness 0 to its
    maximum, empty values included (a gap in staleness is a real gap); one value per bar
    unless there are more values than bars. [] for no updates."""
    top = h.max(aggregated_only=False)
    if top is None:
        return []
    width = max(1, -(-(top + 1) // max(1, max_bars)))  # ceil: every value gets a bar
    return [
        StalenessBin(
            lo,
            lo + width - 1,
            sum(h.all_updates.get(v, 0) for v in range(lo, lo + width)),
            sum(h.aggregated.get(v, 0) for v in range(lo, lo + width)),
        )
        for lo in range(0, top + 1, width)
    ]


MAX_STALENESS_BARS = 40  # beyond this many staleness values, a bar covers several
STALENESS_LABELS_UP_TO = 30  # bars with a count printed on top (more would collide)


def staleness_figure(h: StalenessHistogram) -> str:
    """Client updates per staleness value of an async run, each bar split into the updates
    aggregated and those that were not."""
    bins = staleness_bins(h, MAX_STALENESS_BARS)
    width = bins[0].hi - bins[0].lo + 1 if bins else 1
    top = max([b.all_updates for b in bins] or [0])
    fig = Figure("staleness", "Client updates per staleness value", WIDTH_PX, 318)
    ax = fig.panel(76, 32, WIDTH_PX - 100, 200)
    x_hi = (bins[-1].hi if bins else 0) + 0.5 + 0.1 * width
    ax.limits((-0.5 - 0.1 * width, x_hi), (0.0, top * 1.12 or 1.0))
    per_bar = f", {width} values per bar" if width > 1 else ""
    ax.frame(
        "Updates per staleness value",
        f"staleness (server steps applied since the update's base model{per_bar})",
        "client updates (count)",
        x_integer=True,
    )
    done, missed = STATUSES["completed"], STATUSES["not_aggregated"]
    gap = 0.08 * width
    for b in bins:
        x0, x1 = b.lo - 0.5 + gap, b.hi + 0.5 - gap
        ax.box(x0, x1, 0.0, b.aggregated, done.color, done.hatch)
        ax.box(x0, x1, b.aggregated, b.all_updates, missed.color, missed.hatch)
        if b.all_updates and len(bins) <= STALENESS_LABELS_UP_TO:
            ax.label((b.lo + b.hi) / 2, b.all_updates + top * 0.05, str(b.all_updates), "middle")
    fig.legend([Swatch(k.label, k.color, k.hatch) for k in (done, missed)], 76, 300, ncols=2)
    return fig.svg()
