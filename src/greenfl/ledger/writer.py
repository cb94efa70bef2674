"""Writing the ledger: rounds committed whole, each with the server state after it, so a
crash never leaves half a round and a resumed run continues from the last committed one.

A file ledger is written by a writer process (``greenfl/ledger/store.py`` run as a script,
standard library only) while the loop goes on with the next round. ``write_round`` checks a
round's rows and queues them; queued rounds are handed to the writer once ``batch_s`` has
passed since the last hand-over (0: every round at once), as packed numeric blocks, with
the state after the last of them, and committed in one transaction. Every other call (``conn``,
``meta``, ``finish``, ...) first hands over what is queued and waits until it is committed,
so nobody reads the ledger behind the loop. If the loop's process dies, even by ``kill -9``,
the writer still commits what it was handed; what was only queued (at most ``batch_s`` of
rounds) is lost, and ``--resume`` re-runs it.

Why a process: turning a round's numbers into Python values and binding them to SQLite needs
the GIL, so a writer *thread* took as much of the loop's time as writing inline (measured in
BENCHMARKS.md); a process has its own GIL and the second core. Why batches: on a round of
~10 ms a hand-over per round (a snapshot, a system call) was itself ~2% of the round. An
in-memory ledger (``path=None``) or ``background=False`` writes each round inline.

A failed write stops the writer: ``write_round`` raises ``LedgerError`` naming the rounds
from then on, ``flush`` raises it once, and every round committed before it stays."""

from __future__ import annotations

import errno
import json
import logging
import os
import sqlite3
import sys
import weakref
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from greenfl.core.errors import LedgerError
from greenfl.ledger import store
from greenfl.ledger.amend import record_columns
from greenfl.ledger.chain import start_chain
from greenfl.ledger.child import StateArg, WriterProcess
from greenfl.ledger.ending import end_run
from greenfl.ledger.fingerprint import fingerprint
from greenfl.ledger.rows import pack_rounds, statuses
from greenfl.ledger.schema import (
    ADDED_ROUND_COLUMNS,
    CLIENT_ROUND_COLUMNS,
    DDL,
    ROUND_COLUMNS,
    SCHEMA_VERSION,
    STATUSES,
    migrate,
)

_NULLABLE = frozenset(name for name, _ in ADDED_ROUND_COLUMNS)


log = logging.getLogger("greenfl.ledger")
_STATUS_SET = frozenset(STATUSES)
_SQL = store.RoundSQL(ROUND_COLUMNS, CLIENT_ROUND_COLUMNS)
# How long a new writer waits for an earlier writer of the same file to finish.
LOCK_WAIT_S = 10.0


class LedgerWriter:
    """Owns the ledger of one run. ``path=None`` keeps the ledger in memory, so that even a
    run without an output folder computes its totals from ledger rows."""

    def __init__(
        self,
        path: str | Path | None,
        background: bool = True,
        batch_s: float = 0.0,
        lock_wait_s: float = LOCK_WAIT_S,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.on_close: list[Callable[[], None]] = []  # e.g. release the run folder's lock
        self._child: WriterProcess | None = None
        if self.path is not None and background and WriterProcess.supported():
            # First: the child locks the file, so an earlier writer of it has finished
            # (waiting up to lock_wait_s: a killed run's writer committing its last rounds).
            try:
                self._child = WriterProcess(self.path, batch_s, lock_wait_s)
            except OSError as exc:  # no process to be had (limits, no executable): inline
                log.warning("ledger writer process did not start (%s); writing inline", exc)
            else:
                self._stop = weakref.finalize(self, self._child.stop)
        # Space held back for the run's last word: on a full disk, the status update that
        # marks the run failed needs a page or two of its own (RESERVE_BYTES).
        self._reserve = _make_reserve(self.path) if self.path is not None else None
        self._conn = store.connect(str(self.path) if self.path is not None else ":memory:")
        self._conn.executescript(DDL)
        migrate(self._conn)
        self._conn.execute(
            "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
        # A run started by a greenfl with other columns: the rounds written from now on are
        # hashed over this greenfl's, and its chain says so from here (a 'columns' link).
        record_columns(self._conn)

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection, once every round written is committed."""
        self.flush()
        return self._conn

    @property
    def background(self) -> bool:
        """Whether rounds are written by a writer process."""
        return self._child is not None

    @property
    def writer_pid(self) -> int | None:
        """The writer process's pid (to watch its CPU or memory), None without one."""
        return self._child.proc.pid if self._child is not None else None

    def begin_run(self, config: Mapping[str, Any], fleet: Mapping[str, Any], version: str) -> None:
        """The run's row, and the first link of its hash chain: the fingerprints of its
        config, fleet, traces and code (greenfl.ledger.fingerprint)."""
        start = fingerprint(config, fleet, version)
        with self.transaction():
            start_chain(self._conn, start)
            self._conn.execute(
                "INSERT OR REPLACE INTO runs VALUES (1, ?, ?, ?, ?, 'running', NULL)",
                (
                    datetime.now(timezone.utc).isoformat(),
                    version,
                    json.dumps(config, sort_keys=True),
                    json.dumps(fleet, sort_keys=True),
                ),
            )

    def transaction(self) -> store.Transaction:
        self.flush()
        return _Transaction(self._conn, self.path)

    def write_round(
        self,
        round_row: Mapping[str, Any],
        client_rows: Sequence[Mapping[str, Any]],
        state: StateArg = None,
    ) -> None:
        """One round's rows and the server state after it. The rows must not change
        afterwards (the round loop builds new arrays every round)."""
        if self._child is not None:
            self._child.check()
        unknown = set(statuses(client_rows)) - _STATUS_SET
        if unknown:
            # Checked here, not by an SQL CHECK: a CHECK (status IN ...) doubled insert time.
            raise LedgerError(f"client status {sorted(unknown)} is none of {list(STATUSES)}")
        # Nullable columns may be left out (NULL); a missing required one is a KeyError.
        row = tuple(round_row.get(c) if c in _NULLABLE else round_row[c] for c in ROUND_COLUMNS)
        if self._child is not None:
            self._child.add(row, client_rows, state)
            return
        blobs = state() if callable(state) else state
        packed = pack_rounds([client_rows], CLIENT_ROUND_COLUMNS)
        try:
            store.write_rounds(self._conn, _SQL, [row], packed, blobs)
        except sqlite3.Error as exc:  # as the writer process words it (writer_proc.serve)
            kind = DiskFull if disk_full(exc) else LedgerError
            why = store.why(exc, str(self.path))
            raise kind(f"the ledger could not write round {row[0]}: {why}") from None

    def hand_over(self) -> None:
        """Hand what is queued to the writer now, without waiting for it to be committed
        (e.g. before other work at the end of a run, so the writer commits meanwhile)."""
        if self._child is not None:
            self._child.hand_over()

    def flush(self) -> None:
        """Hand over what is queued and wait until it is committed. A failed write is
        raised once; after that the ledger still reads, and finish() still works."""
        if self._child is not None:
            self._child.flush()

    def meta(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM meta").fetchall())

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def finish(self, status: str, stop_reason: str | None) -> None:
        """The run's final status. On a full disk the reserve file is given up first, so
        the ledger still says ``failed`` (and why) instead of ``running``."""
        try:
            self._set_status(status, stop_reason)
        except DiskFull:
            if not self._free_reserve():
                raise
            self._set_status(status, stop_reason)

    def _set_status(self, status: str, stop_reason: str | None) -> None:
        # the status and the chain's end link recording it, in one transaction
        # (greenfl.ledger.ending): verification holds the one against the other
        with self.transaction():
            end_run(self._conn, status, stop_reason)

    def _free_reserve(self) -> bool:
        """Remove the reserve file; whether there was one to remove."""
        if self._reserve is None:
            return False
        self._reserve.unlink(missing_ok=True)
        self._reserve = None
        return True

    def close(self) -> None:
        """Commit what is queued, stop the writer and close the connection. A failed write
        not reported before is raised here; the ledger closes anyway."""
        try:
            self.flush()
        finally:
            if self._child is not None:
                self._stop()
            self._conn.close()
            self._free_reserve()
            while self.on_close:
                self.on_close.pop()()


class _Transaction(store.Transaction):
    """A transaction whose full disk is a LedgerError in one line, not sqlite3's error."""

    def __init__(self, conn: sqlite3.Connection, path: Path | None) -> None:
        super().__init__(conn)
        self.path = path

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            super().__exit__(exc_type, exc, tb)
        except (sqlite3.OperationalError, OSError) as failed:
            # The COMMIT itself found the disk full (in WAL mode the pages are written
            # then): the same DiskFull as a failure inside the transaction, so that
            # finish() gives up the reserve and writes the status again.
            if not disk_full(failed):
                raise
            raise DiskFull(f"the disk holding {self.path} is full ({failed})") from failed
        if isinstance(exc, sqlite3.OperationalError | OSError) and disk_full(exc):
            raise DiskFull(f"the disk holding {self.path} is full ({exc})") from exc


class DiskFull(LedgerError):
    """The ledger's disk is full (or its database reached its size limit)."""


RESERVE_BYTES = 1 << 20
RESERVE_SUFFIX = "-reserve"


def _make_reserve(path: Path) -> Path | None:
    """A file of RESERVE_BYTES beside the ledger, its blocks allocated (not sparse); None
    where it cannot be made (the disk is full already: the run fails on its first write)."""
    reserve = path.with_name(path.name + RESERVE_SUFFIX)
    try:
        with open(reserve, "wb") as fh:
            if sys.platform.startswith("linux"):
                os.posix_fallocate(fh.fileno(), 0, RESERVE_BYTES)
            else:  # no posix_fallocate (macOS): written, so the blocks are the file's
                fh.write(bytes(RESERVE_BYTES))
    except OSError:
        reserve.unlink(missing_ok=True)
        return None
    return reserve


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk (or the database's size limit) is full."""
    if isinstance(exc, OSError):
        return exc.errno == errno.ENOSPC
    return "full" in str(exc).lower()
