"""Writing the ledger: one transaction per round, so a crash loses at most the round in
flight and never half of one.

Rounds are written inline, on the loop's thread. A writer thread was tried and measured
slower (sqlite3 releases the GIL around every row, and the hand-backs cost the loop more than
the inserts), and so was a writer process on 2 cores (it competes with the loop for the
cores, and its start-up alone costs ~0.2 s of CPU a run); see BENCHMARKS.md."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from greenfl.errors import GreenflError
from greenfl.ledger.rows import ColumnRows
from greenfl.ledger.schema import (
    CLIENT_ROUND_COLUMNS,
    DDL,
    ROUND_COLUMNS,
    SCHEMA_VERSION,
    STATUSES,
)


def connect(path: str | Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None)  # explicit BEGIN/COMMIT below
    conn.execute(
        "PRAGMA journal_mode=WAL" if str(path) != ":memory:" else "PRAGMA journal_mode=MEMORY"
    )
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class LedgerWriter:
    """Owns the ledger connection of one run. ``path=None`` keeps the ledger in memory,
    so that even a run without an output folder computes its totals from ledger rows."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self.conn = connect(self.path if self.path is not None else ":memory:")
        self.conn.executescript(DDL)
        self.conn.execute(
            "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )

    def begin_run(self, config: Mapping[str, Any], fleet: Mapping[str, Any], version: str) -> None:
        with self.transaction():
            self.conn.execute(
                "INSERT OR REPLACE INTO runs VALUES (1, ?, ?, ?, ?, 'running', NULL)",
                (
                    datetime.now(timezone.utc).isoformat(),
                    version,
                    json.dumps(config, sort_keys=True),
                    json.dumps(fleet, sort_keys=True),
                ),
            )

    def transaction(self) -> _Transaction:
        return _Transaction(self.conn)

    def write_round(
        self,
        round_row: Mapping[str, Any],
        client_rows: Sequence[Mapping[str, Any]],
        state: Mapping[str, bytes] | None = None,
    ) -> None:
        """One round's rows, and optionally the server state after it, atomically."""
        statuses = (
            client_rows.column("status")
            if isinstance(client_rows, ColumnRows)
            else [r["status"] for r in client_rows]
        )
        unknown = set(statuses) - _STATUS_SET
        if unknown:
            # Checked here, not by an SQL CHECK: a CHECK (status IN ...) doubled insert time.
            raise LedgerError(f"client status {sorted(unknown)} is none of {list(STATUSES)}")
        with self.transaction():
            self.conn.execute(_SQL["round"], tuple(round_row[c] for c in ROUND_COLUMNS))
            self.conn.executemany(
                _SQL["client"],
                client_rows.as_tuples(CLIENT_ROUND_COLUMNS)
                if isinstance(client_rows, ColumnRows)
                else [tuple(r[c] for c in CLIENT_ROUND_COLUMNS) for r in client_rows],
            )
            for key, blob in (state or {}).items():
                self.conn.execute(_SQL["state"], (key, int(round_row["round"]), blob))

    def meta(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM meta").fetchall())

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def finish(self, status: str, stop_reason: str | None) -> None:
        with self.transaction():
            self.conn.execute(
                "UPDATE runs SET status = ?, stop_reason = ? WHERE run_id = 1",
                (status, stop_reason),
            )

    def close(self) -> None:
        self.conn.close()


class LedgerError(GreenflError):
    """A row the ledger cannot take."""


_STATUS_SET = frozenset(STATUSES)


_SQL = {
    "round": f"INSERT INTO rounds ({', '.join(ROUND_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(ROUND_COLUMNS))})",
    "client": f"INSERT INTO client_rounds ({', '.join(CLIENT_ROUND_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(CLIENT_ROUND_COLUMNS))})",
    "state": "INSERT OR REPLACE INTO server_state VALUES (?, ?, ?)",
}


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
