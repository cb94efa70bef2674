"""Record a golden ledger: ``python tests/golden/record.py OUT.json`` (PYTHONPATH=src).

The runs are small and use annual-mean carbon intensity, so that no footprint column depends
on where a round falls in the day; the columns that come from the server's host-measured
time (and the simulated times that follow from it) are left out, since they are not
repeatable until the server is modelled from counted work."""

from __future__ import annotations

import json
import sqlite3
import sys
import tempfile
from pathlib import Path

import greenfl

RUNS = {
    "quickstart": ["train.rounds=4", "fleet.ci_mode='annual'"],
    "stragglers": [
        "data.dataset='synthetic'",
        "data.num_clients=40",
        "train.rounds=4",
        "train.clients_per_round=8",
        "fleet.ci_mode='annual'",
        "fleet.dropout_prob=0.2",
        "fleet.deadline_s=2.0",
        "fleet.over_selection=0.5",
        "selection.name='carbon'",
        # the quickstart's round, as the golden run had it (synthetic's own defaults differ)
        "train.local_epochs=5",
        "train.batch_size=8",
    ],
}
# Host-measured server time, and what it moves: the simulated clock.
HOST_COLUMNS = {
    "rounds": {
        "wall_s",
        "server_s",
        "server_energy_j",
        "server_carbon_g",
        "start_s",
        "end_s",
        "server_estimated",
    },
    "client_rounds": {"start_s"},
}


def ledger_rows(out: Path) -> dict[str, list[dict[str, object]]]:
    conn = sqlite3.connect(out / "ledger.sqlite")
    try:
        tables = {}
        for table, order in (("rounds", "round"), ("client_rounds", "round, client_id")):
            cur = conn.execute(f"SELECT * FROM {table} ORDER BY {order}")
            cols = [c[0] for c in cur.description]
            tables[table] = [
                {c: v for c, v in zip(cols, row, strict=True) if c not in HOST_COLUMNS[table]}
                for row in cur.fetchall()
            ]
        return tables
    finally:
        conn.close()


def record() -> dict[str, object]:
    golden = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides in RUNS.items():
            out = Path(tmp) / name
            cfg = greenfl.load_config(None, [*overrides, "report.html=false"])
            greenfl.run(cfg, out)
            golden[name] = ledger_rows(out)
    return golden


if __name__ == "__main__":
    Path(sys.argv[1]).write_text(json.dumps(record(), indent=1, sort_keys=True) + "\n")
