"""The numbers behind every table and plot, read from the ledger with SQL. The terminal
summary and the HTML report both use these, so they always agree."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from greenfl.units import J_PER_KWH


@dataclass(frozen=True)
class Breakdown:
    """Where the energy and carbon went, over the whole run."""

    compute_j: float
    comm_j: float
    server_j: float
    client_operational_g: float
    server_g: float
    embodied_g: float

    @property
    def total_j(self) -> float:
        return self.compute_j + self.comm_j + self.server_j

    @property
    def total_g(self) -> float:
        return self.client_operational_g + self.server_g + self.embodied_g


def breakdown(conn: sqlite3.Connection) -> Breakdown:
    c = conn.execute(
        "SELECT COALESCE(SUM(energy_compute_j),0), COALESCE(SUM(energy_comm_j),0), "
        "COALESCE(SUM(carbon_operational_g),0), COALESCE(SUM(carbon_embodied_g),0) "
        "FROM client_rounds"
    ).fetchone()
    s = conn.execute(
        "SELECT COALESCE(SUM(server_energy_j),0), COALESCE(SUM(server_carbon_g),0) FROM rounds"
    ).fetchone()
    return Breakdown(c[0], c[1], s[0], c[2], s[1], c[3])


def carbon_by(
    conn: sqlite3.Connection, column: str, limit: int | None = None
) -> list[tuple[str, float, int]]:
    """(name, gCO2e operational+embodied, client-rounds) per region / device / network."""
    if column not in ("region", "device", "network", "status", "target"):
        raise ValueError(f"cannot group by {column!r}")
    sql = (
        f"SELECT {column}, SUM(carbon_operational_g + carbon_embodied_g) AS g, COUNT(*) "
        f"FROM client_rounds GROUP BY {column} ORDER BY g DESC"
    )
    rows = conn.execute(sql + (f" LIMIT {int(limit)}" if limit else "")).fetchall()
    return [(str(n), float(g), int(c)) for n, g, c in rows]


def intelligence_per_kwh(final_accuracy: float, initial_accuracy: float, energy_j: float) -> float:
    """Accuracy points (percentage points) gained per kWh spent."""
    if energy_j <= 0:
        return float("nan")
    return (final_accuracy - initial_accuracy) * 100 / (energy_j / J_PER_KWH)
