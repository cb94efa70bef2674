"""What a run's clients trained, grouped by how they trained it (issue 31): per sub-model
width, per arithmetic precision and per weight density, the client rounds, samples, FLOPs,
compute energy, bytes and carbon, and each width's accuracy after every round. Read from the
ledger only: ``client_rounds.width`` (schema 6), ``client_rounds.precision`` and
``client_rounds.density`` (schema 7, where present) and ``rounds.width_accuracy`` (schema 7,
JSON {"0.5": accuracy, ...} of each narrower width's slice of the global model)."""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from greenfl.ledger.schema import AGGREGATED_SQL
from greenfl.report.run_mode import has_column
from greenfl.report.tables import RoundSeries

# The client_rounds columns a run's work can be grouped by, in the order the report shows
# them: the sub-model width, the arithmetic precision, the share of weights trained.
GROUP_COLUMNS: tuple[str, ...] = ("width", "precision", "density")
FULL_WIDTH = 1.0
# Precisions widest first (others after them, by name).
PRECISION_ORDER: tuple[str, ...] = ("fp32", "bf16", "fp16")


GroupKey = float | str | None  # a width or density (REAL), a precision (TEXT); None: NULL


@dataclass(frozen=True)
class GroupUsage:
    """The client rounds that trained at one width (or precision, or density), summed.
    ``carbon_g`` is the clients' operational plus embodied carbon."""

    key: GroupKey
    client_rounds: int
    aggregated: int
    samples: int
    flops: float
    compute_j: float
    bytes_up: int
    bytes_down: int
    carbon_g: float


def group_label(column: str, key: GroupKey) -> str:
    """How a group is named in tables: "1 (full)", "0.5", "bf16", "not recorded"."""
    if key is None:
        return "not recorded"
    if isinstance(key, str):
        return key
    text = f"{key:g}"
    if column == "width" and key == FULL_WIDTH:
        return f"{text} (full)"
    if column == "density" and key == 1.0:
        return f"{text} (dense)"
    return text


def _order(column: str, key: GroupKey) -> tuple[int, float, str]:
    """Widest width or density first, fp32 before bf16 before fp16; NULL last."""
    if key is None:
        return (2, 0.0, "")
    if isinstance(key, str):
        known = PRECISION_ORDER.index(key) if key in PRECISION_ORDER else len(PRECISION_ORDER)
        return (0, float(known), key)
    return (0, -float(key), "")


def usage_by(conn: sqlite3.Connection, column: str) -> list[GroupUsage] | None:
    """The run's client rounds summed per value of ``column`` (one of GROUP_COLUMNS); None
    where the ledger has no such column (written before it was recorded)."""
    if column not in GROUP_COLUMNS:
        raise ValueError(f"cannot group client rounds by {column!r}: one of {GROUP_COLUMNS}")
    if not has_column(conn, "client_rounds", column):
        return None
    rows = conn.execute(
        # TOTAL, not SUM: a float sum that cannot overflow where a client declared an
        # absurd sample count (SQLite's integer SUM raises on overflow)
        f"SELECT {column}, COUNT(*), TOTAL({AGGREGATED_SQL}), TOTAL(num_samples), "
        "TOTAL(flops), TOTAL(energy_compute_j), TOTAL(bytes_up), TOTAL(bytes_down), "
        "TOTAL(carbon_operational_g + carbon_embodied_g) "
        f"FROM client_rounds GROUP BY {column}"
    ).fetchall()
    groups = [
        GroupUsage(
            key=row[0] if row[0] is None or isinstance(row[0], str) else float(row[0]),
            client_rounds=int(row[1]),
            aggregated=int(row[2]),
            samples=int(row[3]),
            flops=float(row[4]),
            compute_j=float(row[5]),
            bytes_up=int(row[6]),
            bytes_down=int(row[7]),
            carbon_g=float(row[8]),
        )
        for row in rows
    ]
    return sorted(groups, key=lambda g: _order(column, g.key))


def varies(groups: Sequence[GroupUsage] | None) -> bool:
    """Whether the run's work differed along the column: more than one recorded value."""
    return groups is not None and len([g for g in groups if g.key is not None]) > 1


def trained_submodels(conn: sqlite3.Connection) -> bool:
    """Whether some client trained a sub-model (a width below 1) in this run."""
    if not has_column(conn, "client_rounds", "width"):
        return False
    row = conn.execute(
        "SELECT 1 FROM client_rounds WHERE width IS NOT NULL AND width < ? LIMIT 1",
        (FULL_WIDTH,),
    ).fetchone()
    return row is not None


def mean_width(conn: sqlite3.Connection) -> float | None:
    """The width the run's client rounds trained at, weighted by their samples (1.0 for a
    run without sub-models); None where no row recorded a width (or no samples)."""
    if not has_column(conn, "client_rounds", "width"):
        return None
    row = conn.execute(
        "SELECT TOTAL(width * num_samples), TOTAL(num_samples), COUNT(*) FROM client_rounds "
        "WHERE width IS NOT NULL"
    ).fetchone()
    if not row[2] or not row[1]:
        return None
    return float(row[0]) / float(row[1])


@dataclass(frozen=True)
class WidthCurve:
    """One width's test accuracy after each round (its slice of the global model; the full
    model's for width 1), against the run's cumulative carbon at the round's end."""

    width: float
    cum_carbon_g: list[float]
    accuracy: list[float | None]

    @property
    def final_accuracy(self) -> float | None:
        """The last accuracy measured (a round without evaluation has none)."""
        done = [a for a in self.accuracy if a is not None and math.isfinite(a)]
        return done[-1] if done else None


def width_accuracy_rows(conn: sqlite3.Connection) -> list[dict[float, float]] | None:
    """Per round, in round order, {width: accuracy} of each narrower width's slice; None for
    a ledger without ``rounds.width_accuracy`` (written before schema 7) or without a value
    in any round (no sub-models)."""
    if not has_column(conn, "rounds", "width_accuracy"):
        return None
    texts = [r[0] for r in conn.execute("SELECT width_accuracy FROM rounds ORDER BY round")]
    if all(t is None for t in texts):
        return None
    return [
        {float(w): float(a) for w, a in json.loads(t).items()} if t is not None else {}
        for t in texts
    ]


def width_curves(conn: sqlite3.Connection, series: RoundSeries) -> list[WidthCurve]:
    """The full model's curve, then each narrower width's, widest first; only the full
    model's where the ledger holds no per-width accuracy."""
    cum = series.cum_carbon_g
    curves = [WidthCurve(FULL_WIDTH, cum, list(series.accuracy))]
    per_round = width_accuracy_rows(conn)
    if per_round is None:
        return curves
    widths = sorted({w for r in per_round for w in r if w != FULL_WIDTH}, reverse=True)
    for w in widths:
        curves.append(WidthCurve(w, cum, [r.get(w) for r in per_round]))
    return curves
