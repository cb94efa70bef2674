"""The numbers behind every table and plot, read from the ledger with SQL. The terminal
summary and the HTML report both use these, so they always agree."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from greenfl.core.units import J_PER_KWH
from greenfl.ledger.schema import AGGREGATED_SQL


@dataclass(frozen=True)
class Breakdown:
    """Where the energy and carbon went, over the whole run."""

    compute_j: float
    comm_j: float
    server_j: float
    client_operational_g: float
    server_g: float
    embodied_g: float
    # The clients' energy at the wall and the network's part of comm_j (None: a ledger
    # written before they were recorded)
    wall_j: float | None = None
    network_j: float | None = None

    @property
    def total_j(self) -> float:
        return self.compute_j + self.comm_j + self.server_j

    @property
    def total_g(self) -> float:
        return self.client_operational_g + self.server_g + self.embodied_g


def breakdown(conn: sqlite3.Connection) -> Breakdown:
    have = {row[1] for row in conn.execute("PRAGMA table_info(client_rounds)")}
    wall = "SUM(wall_energy_j), SUM(energy_network_j)" if "wall_energy_j" in have else "NULL, NULL"
    c = conn.execute(
        "SELECT COALESCE(SUM(energy_compute_j),0), COALESCE(SUM(energy_comm_j),0), "
        "COALESCE(SUM(carbon_operational_g),0), COALESCE(SUM(carbon_embodied_g),0), "
        f"{wall} FROM client_rounds"
    ).fetchone()
    s = conn.execute(
        "SELECT COALESCE(SUM(server_energy_j),0), COALESCE(SUM(server_carbon_g),0) FROM rounds"
    ).fetchone()
    return Breakdown(c[0], c[1], s[0], c[2], s[1], c[3], c[4], c[5])


def energy_basis(b: Breakdown) -> str:
    """Which energy the clients' operational carbon is computed from, in words."""
    if b.wall_j is None or b.network_j is None:
        return (
            "This ledger predates wall-side energy: its clients' operational carbon uses "
            "their device-side energy."
        )
    device_j = b.compute_j + b.comm_j - b.network_j
    return (
        f"Client energy above is device-side ({device_j:.4g} J on the devices, "
        f"{b.network_j:.4g} J in the network). The clients' operational carbon uses the "
        f"devices' energy at the wall, {b.wall_j:.4g} J (charging losses included), and the "
        "network's: its access share on the client's grid, the rest on the server's."
    )


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


# ---- series and groupings behind the HTML report's plots --------------------------------


@dataclass(frozen=True)
class RoundSeries:
    """Per round, in order: the x and y values of the accuracy and breakdown plots."""

    rounds: list[int]
    start_s: list[float]
    end_s: list[float]
    accuracy: list[float | None]
    compute_g: list[float]
    comm_g: list[float]
    server_g: list[float]
    embodied_g: list[float]
    energy_j: list[float]

    @property
    def carbon_g(self) -> list[float]:
        return [
            a + b + c + d
            for a, b, c, d in zip(
                self.compute_g, self.comm_g, self.server_g, self.embodied_g, strict=True
            )
        ]

    @property
    def cum_carbon_g(self) -> list[float]:
        out, total = [], 0.0
        for g in self.carbon_g:
            total += g
            out.append(total)
        return out

    @property
    def cum_energy_j(self) -> list[float]:
        out, total = [], 0.0
        for j in self.energy_j:
            total += j
            out.append(total)
        return out


# A client's operational carbon covers its compute and communication energy at one intensity,
# so it splits between the two in proportion to their energy.
_SPLIT_SQL = (
    "COALESCE(SUM(CASE WHEN energy_compute_j + energy_comm_j > 0 THEN carbon_operational_g "
    "* energy_compute_j / (energy_compute_j + energy_comm_j) ELSE 0 END), 0), "
    "COALESCE(SUM(CASE WHEN energy_compute_j + energy_comm_j > 0 THEN carbon_operational_g "
    "* energy_comm_j / (energy_compute_j + energy_comm_j) ELSE 0 END), 0), "
    "COALESCE(SUM(carbon_embodied_g), 0)"
)


def round_series(conn: sqlite3.Connection) -> RoundSeries:
    clients = {
        r: (comp, comm, emb, e)
        for r, comp, comm, emb, e in conn.execute(
            f"SELECT round, {_SPLIT_SQL}, SUM(energy_compute_j + energy_comm_j) "
            "FROM client_rounds GROUP BY round"
        )
    }
    s = RoundSeries([], [], [], [], [], [], [], [], [])
    for rnd, start, end, acc, srv_j, srv_g in conn.execute(
        "SELECT round, start_s, end_s, accuracy, server_energy_j, server_carbon_g "
        "FROM rounds ORDER BY round"
    ):
        comp, comm, emb, e = clients.get(rnd, (0.0, 0.0, 0.0, 0.0))
        s.rounds.append(int(rnd))
        s.start_s.append(float(start))
        s.end_s.append(float(end))
        s.accuracy.append(None if acc is None else float(acc))
        s.compute_g.append(float(comp))
        s.comm_g.append(float(comm))
        s.server_g.append(float(srv_g))
        s.embodied_g.append(float(emb))
        s.energy_j.append(float(e or 0.0) + float(srv_j))
    return s


@dataclass(frozen=True)
class GroupCarbon:
    name: str
    compute_g: float
    comm_g: float
    embodied_g: float
    client_rounds: int

    @property
    def total_g(self) -> float:
        return self.compute_g + self.comm_g + self.embodied_g


_GROUP_COLUMNS = ("region", "device", "network", "status", "target")


def group_carbon(conn: sqlite3.Connection, column: str) -> list[GroupCarbon]:
    """Client carbon (compute, communication, embodied) per region / device / ..., largest
    first. The server's carbon belongs to no client group and is not included."""
    if column not in _GROUP_COLUMNS:
        raise ValueError(f"cannot group by {column!r}")
    rows = conn.execute(
        f"SELECT {column}, {_SPLIT_SQL}, COUNT(*) FROM client_rounds GROUP BY {column}"
    ).fetchall()
    out = [GroupCarbon(str(n), float(a), float(b), float(c), int(k)) for n, a, b, c, k in rows]
    return sorted(out, key=lambda g: (-g.total_g, g.name))


def jain_index(values: list[float] | list[int]) -> float:
    """Jain's fairness index (sum x)^2 / (n sum x^2): 1 when all are equal, 1/n when one
    takes everything. NaN for no values or all zeros."""
    n = len(values)
    sq = sum(float(v) * float(v) for v in values)
    if n == 0 or sq == 0:
        return float("nan")
    return sum(float(v) for v in values) ** 2 / (n * sq)


@dataclass(frozen=True)
class GroupParticipation:
    name: str
    clients: int  # clients of the population in this group
    selected: int  # client-rounds selected
    completed: int  # client-rounds aggregated
    jain: float  # Jain's index of completed rounds over this group's clients

    @property
    def not_aggregated(self) -> int:
        return self.selected - self.completed

    @property
    def completed_per_client(self) -> float:
        return self.completed / self.clients if self.clients else float("nan")


@dataclass(frozen=True)
class Participation:
    column: str
    groups: list[GroupParticipation]
    jain_all: float  # over every client of the population, never-selected ones at 0
    num_clients: int
    took_part: int  # clients with at least one aggregated round (summary's clients_distinct)


def participation(
    conn: sqlite3.Connection,
    column: str,
    group_sizes: dict[str, int] | None = None,
    num_clients: int | None = None,
) -> Participation:
    """How often each group's clients took part. ``group_sizes`` holds each group's clients
    in the whole population (the ledger meta population_groups), so clients never selected
    count, at zero; without it only the clients seen in the ledger are known, and
    ``num_clients`` (the population's size) still lets the index over all clients count
    the others at zero."""
    if column not in _GROUP_COLUMNS:
        raise ValueError(f"cannot group by {column!r}")
    per_client = conn.execute(
        f"SELECT MIN({column}), COUNT(*), SUM(" + AGGREGATED_SQL + ") "
        "FROM client_rounds GROUP BY client_id"
    ).fetchall()
    seen: dict[str, list[tuple[int, int]]] = {}  # group -> (selected, aggregated) per client
    for g, sel, done in per_client:
        seen.setdefault(str(g), []).append((int(sel), int(done)))
    sizes = dict(group_sizes or {})
    groups = []
    for g in sorted(set(seen) | set(sizes)):
        clients = seen.get(g, [])
        # A client the ledger saw is in its group however the record counts it.
        never = max(sizes.get(g, 0) - len(clients), 0)
        done = [d for _, d in clients] + [0] * never
        groups.append(
            GroupParticipation(
                name=g,
                clients=len(done),
                selected=sum(s for s, _ in clients),
                completed=sum(done),
                jain=jain_index(done),
            )
        )
    groups.sort(key=lambda x: (-x.selected, x.name))
    # Clients never selected took part zero times; they count in the index.
    n = max(sum(x.clients for x in groups), num_clients or 0)
    completed_all = [d for clients in seen.values() for _, d in clients]
    took_part = sum(1 for d in completed_all if d > 0)
    completed_all += [0] * (n - len(completed_all))
    return Participation(column, groups, jain_index(completed_all), n, took_part)


# What each status means, for rows whose ledger reason is empty.
STATUS_MEANING: dict[str, str] = {
    "straggler": "still working when the round closed (deadline or over-selection)",
    "dropped": "dropped out part-way (fleet.dropout_prob)",
    "failed": "the client reported a failure",
    "rejected": "the update failed validation",
}


@dataclass(frozen=True)
class IncidentKind:
    status: str
    reason: str
    count: int
    energy_j: float
    carbon_g: float


def incident_kinds(conn: sqlite3.Connection) -> list[IncidentKind]:
    """Client-rounds that were not aggregated, by status and reason, with the energy and
    carbon their (wasted) work cost."""
    rows = conn.execute(
        "SELECT status, COALESCE(reason, ''), COUNT(*), SUM(energy_compute_j + energy_comm_j), "
        "SUM(carbon_operational_g + carbon_embodied_g) FROM client_rounds "
        "WHERE NOT " + AGGREGATED_SQL + " GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2"
    ).fetchall()
    return [IncidentKind(s, r, int(n), float(e), float(g)) for s, r, n, e, g in rows]


def incidents(conn: sqlite3.Connection, limit: int = 200) -> tuple[list[dict[str, object]], int]:
    """The first ``limit`` non-aggregated client-rounds (by round, client) and how many there
    are in all."""
    total = int(
        conn.execute("SELECT COUNT(*) FROM client_rounds WHERE NOT " + AGGREGATED_SQL).fetchone()[0]
    )
    cur = conn.execute(
        "SELECT round, client_id, device, network, region, status, COALESCE(reason, ''), "
        "compute_s + comm_s, energy_compute_j + energy_comm_j, "
        "carbon_operational_g + carbon_embodied_g FROM client_rounds "
        "WHERE NOT " + AGGREGATED_SQL + " ORDER BY round, client_id LIMIT ?",
        (int(limit),),
    )
    keys = (
        "round",
        "client_id",
        "device",
        "network",
        "region",
        "status",
        "reason",
        "active_s",
        "energy_j",
        "carbon_g",
    )
    return [dict(zip(keys, row, strict=True)) for row in cur.fetchall()], total
