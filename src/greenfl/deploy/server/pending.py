"""The accepted updates of an asynchronous deployment that no committed server step has
applied yet, on disk (``pending-updates.sqlite`` beside the run's ledger), so that a server
killed with ``kill -9`` loses none it acknowledged.

An accepted update is written here, and committed (``synchronous = FULL``: on the disk, not
in a cache) before its client hears "accepted". Each gets a sequence number, in the order
the server accepted them, never reused (``AUTOINCREMENT``); a server step takes updates in
that order, so the updates applied by the committed steps are exactly those up to a mark,
``applied_seq``, which the step's snapshot holds (written in the same ledger transaction as
the step's rows). On ``--resume`` the updates after the restored mark are taken again, and
those up to it are deleted: none is lost, none applied twice. A task id is stored once
(``UNIQUE``): a duplicate upload of one task cannot be accepted twice even in a race.

Only accepted updates are kept: a rejected or failed report carries no update, and a crash
before its server step costs only its ledger row."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from greenfl.core.errors import LedgerError
from greenfl.core.messages import ClientReport

FILE_NAME = "pending-updates.sqlite"

DDL = """
CREATE TABLE IF NOT EXISTS pending_updates (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL UNIQUE,
    client_id INTEGER NOT NULL,
    version INTEGER NOT NULL,
    start_s REAL NOT NULL,
    finish_s REAL NOT NULL,
    report_json TEXT NOT NULL,
    delta BLOB
);
CREATE TABLE IF NOT EXISTS pending_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

# The report's fields but its delta, stored as JSON (NaN loss included: Python's json
# writes and reads it).
_FIELDS = tuple(f for f in ClientReport._fields if f != "delta")


@dataclass(frozen=True)
class Stored:
    """One accepted update as stored: its sequence number and task, the model version it
    trained from, when it was dispatched and accepted (seconds since the run's start)."""

    seq: int
    task_id: str
    version: int
    start_s: float
    finish_s: float
    report: ClientReport


class DuplicateTask(LedgerError):
    """An update of a task already stored (a replayed upload)."""


class PendingStore:
    """``pending-updates.sqlite`` in ``out_dir``. ``fresh``: a new run (a previous run's
    store there is removed); else the store of the run being resumed (made if missing).
    Thread-safe: gRPC threads add, the loop's thread reads and deletes."""

    def __init__(self, out_dir: Path, fresh: bool) -> None:
        self.path = Path(out_dir) / FILE_NAME
        if fresh:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode = WAL")
            # FULL: a commit is on the disk before the client is told "accepted".
            self._conn.execute("PRAGMA synchronous = FULL")
            self._conn.executescript(DDL)
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open {self.path}: {exc}") from None
        self.applied_seq = 0  # the mark of the last step taken (set by the flow)

    # ---- the run's start --------------------------------------------------------------
    def run_start_unix(self) -> float:
        """The Unix time the run started (stored the first time it is asked)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT value FROM pending_meta WHERE key = 'run_start_unix'"
            ).fetchone()
            if row is not None:
                return float(row[0])
            now = time.time()
            self._conn.execute(
                "INSERT INTO pending_meta VALUES ('run_start_unix', ?)", (repr(now),)
            )
            return now

    # ---- updates ----------------------------------------------------------------------
    def add(
        self, task_id: str, version: int, start_s: float, finish_s: float, report: ClientReport
    ) -> int:
        """Store an accepted update, committed on return; its sequence number.
        DuplicateTask if ``task_id`` is stored already; LedgerError if it cannot be
        written (a full disk)."""
        fields = {f: getattr(report, f) for f in _FIELDS}
        blob = None
        if report.delta is not None:
            delta = report.delta.detach().to(torch.float32).contiguous().cpu().numpy()
            blob = delta.tobytes()
        try:
            with self._lock:
                cur = self._conn.execute(
                    "INSERT INTO pending_updates (task_id, client_id, version, start_s, "
                    "finish_s, report_json, delta) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        task_id,
                        int(report.client_id),
                        int(version),
                        float(start_s),
                        float(finish_s),
                        json.dumps(fields),
                        blob,
                    ),
                )
        except sqlite3.IntegrityError:
            raise DuplicateTask(f"task {task_id} already has an accepted update") from None
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot store an accepted update in {self.path}: {exc}") from None
        seq = cur.lastrowid
        assert seq is not None
        return int(seq)

    def after(self, seq: int) -> list[Stored]:
        """The stored updates after sequence number ``seq``, in order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, task_id, version, start_s, finish_s, report_json, delta "
                "FROM pending_updates WHERE seq > ? ORDER BY seq",
                (int(seq),),
            ).fetchall()
        out = []
        for s, task_id, version, start_s, finish_s, text, blob in rows:
            fields = json.loads(text)
            delta = None
            if blob is not None:
                delta = torch.from_numpy(np.frombuffer(blob, dtype=np.float32).copy())
            report = ClientReport(**{**fields, "delta": delta})
            out.append(Stored(int(s), task_id, int(version), start_s, finish_s, report))
        return out

    def drop_upto(self, seq: int) -> int:
        """Delete the updates up to ``seq`` (applied by committed steps); how many."""
        with self._lock:
            cur = self._conn.execute("DELETE FROM pending_updates WHERE seq <= ?", (int(seq),))
        return int(cur.rowcount)

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM pending_updates").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
