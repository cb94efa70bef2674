"""Writing the ledger: one transaction per round, so a crash loses at most the rounds in
flight and never half of one.

With ``background=True`` the rounds' inserts and commits run on a writer thread, in order,
while the loop goes on (at most two rounds wait; every read and every other write first waits
for them). Without it, ``write_round`` returns once the round is committed: what a deployed
server wants, where a round's rows are real measurements that cannot be re-run."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from greenfl.errors import GreenflError
from greenfl.ledger.schema import (
    CLIENT_ROUND_COLUMNS,
    DDL,
    ROUND_COLUMNS,
    SCHEMA_VERSION,
    STATUSES,
)
from greenfl.ledger.worker import OrderedWorker


def connect(path: str | Path) -> sqlite3.Connection:
    # explicit BEGIN/COMMIT below; one thread at a time uses the connection (the writer
    # thread only while rounds are queued, and every other use waits for those first)
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute(
        "PRAGMA journal_mode=WAL" if str(path) != ":memory:" else "PRAGMA journal_mode=MEMORY"
    )
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class LedgerWriter:
    """Owns the ledger connection of one run. ``path=None`` keeps the ledger in memory,
    so that even a run without an output folder computes its totals from ledger rows."""

    def __init__(self, path: str | Path | None, background: bool = False) -> None:
        self.path = Path(path) if path is not None else None
        self._conn = connect(self.path if self.path is not None else ":memory:")
        self._conn.executescript(DDL)
        self._conn.execute(
            "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
        self._worker = OrderedWorker("greenfl-ledger") if background else None

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection, once every round handed over is committed."""
        self.flush()
        return self._conn

    def flush(self) -> None:
        """Wait until every round handed to the writer thread is committed."""
        if self._worker is not None:
            self._worker.flush()

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
        """One round's rows, and optionally the server state after it, atomically. The rows
        must not change afterwards: with a writer thread they are read later."""
        statuses = (
            client_rows.columns["status"]
            if isinstance(client_rows, ColumnarRows)
            else [r["status"] for r in client_rows]
        )
        unknown = set(statuses) - _STATUS_SET
        if unknown:
            # Checked here, not by an SQL CHECK: a CHECK (status IN ...) doubled insert time.
            raise LedgerError(f"client status {sorted(unknown)} is none of {list(STATUSES)}")
        if self._worker is None:
            self._write_round(round_row, client_rows, state)
        else:
            self._worker.submit(lambda: self._write_round(round_row, client_rows, state))

    def _write_round(
        self,
        round_row: Mapping[str, Any],
        client_rows: Sequence[Mapping[str, Any]],
        state: Mapping[str, bytes] | None,
    ) -> None:
        with _Transaction(self._conn):
            self._conn.execute(
                f"INSERT INTO rounds ({', '.join(ROUND_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(ROUND_COLUMNS))})",
                tuple(round_row[c] for c in ROUND_COLUMNS),
            )
            self._conn.executemany(
                f"INSERT INTO client_rounds ({', '.join(CLIENT_ROUND_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(CLIENT_ROUND_COLUMNS))})",
                client_rows.as_tuples(CLIENT_ROUND_COLUMNS)
                if isinstance(client_rows, ColumnarRows)
                else [tuple(r[c] for c in CLIENT_ROUND_COLUMNS) for r in client_rows],
            )
            for key, blob in (state or {}).items():
                self._conn.execute(
                    "INSERT OR REPLACE INTO server_state VALUES (?, ?, ?)",
                    (key, int(round_row["round"]), blob),
                )

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
        """Commit what is queued, stop the writer thread, close the file."""
        try:
            if self._worker is not None:
                self._worker.close()
                self._worker.flush()
        finally:
            self._conn.close()


class LedgerError(GreenflError):
    """A row the ledger cannot take."""


_STATUS_SET = frozenset(STATUSES)


@runtime_checkable
class ColumnarRows(Protocol):
    """Rows held as columns (engine.accounting.ColumnRows): the writer binds them as tuples
    without building a dict per client."""

    columns: Mapping[str, Sequence[Any]]

    def as_tuples(self, order: Sequence[str]) -> list[tuple[Any, ...]]: ...


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
