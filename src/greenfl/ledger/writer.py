"""Writing the ledger: one transaction per round, so a crash loses at most the rounds in
flight and never half of one.

A file ledger is written by a writer process (``greenfl/ledger/store.py`` run as a script,
standard library only) while the loop goes on with the next round. ``write_round`` checks a
round's rows and sends them as packed columns; every other call (``conn``, ``meta``,
``finish``, ...) first waits until what was sent is committed, so nobody reads the ledger
behind the loop. If the loop's process dies, even by ``kill -9``, the writer still commits
every round it was sent and then exits.

Why a process: turning a round's numbers into Python values and binding them to SQLite needs
the GIL, so a writer *thread* took as much of the loop's time as writing inline (measured in
BENCHMARKS.md); a process has its own GIL and the second core. An in-memory ledger
(``path=None``) or ``background=False`` writes inline, before ``write_round`` returns.

A failed write stops the writer: ``write_round`` raises ``LedgerError`` naming the round from
then on, ``flush`` raises it once, and every round committed before it stays."""

from __future__ import annotations

import json
import pickle
import select
import sqlite3
import subprocess
import sys
import time
import weakref
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from greenfl.errors import GreenflError
from greenfl.ledger import store
from greenfl.ledger.rows import pack_rows
from greenfl.ledger.schema import (
    CLIENT_ROUND_COLUMNS,
    DDL,
    ROUND_COLUMNS,
    SCHEMA_VERSION,
    STATUSES,
)


class LedgerError(GreenflError):
    """A row the ledger cannot take, or a round it could not write."""


_STATUS_SET = frozenset(STATUSES)
# How often write_round looks for an error the writer process reported.
CHECK_EVERY_S = 0.5
_SQL = store.RoundSQL(ROUND_COLUMNS, CLIENT_ROUND_COLUMNS)


class LedgerWriter:
    """Owns the ledger of one run. ``path=None`` keeps the ledger in memory, so that even a
    run without an output folder computes its totals from ledger rows."""

    def __init__(self, path: str | Path | None, background: bool = True) -> None:
        self.path = Path(path) if path is not None else None
        self._child: _WriterProcess | None = None
        if self.path is not None and background and _WriterProcess.supported():
            # First: the child locks the file, so an earlier writer of it has finished.
            self._child = _WriterProcess(self.path)
            self._stop = weakref.finalize(self, self._child.stop)
        self._conn = store.connect(str(self.path) if self.path is not None else ":memory:")
        self._conn.executescript(DDL)
        self._conn.execute(
            "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection, once every round sent is committed."""
        self.flush()
        return self._conn

    @property
    def background(self) -> bool:
        """Whether rounds are written by a writer process."""
        return self._child is not None

    def begin_run(self, config: Mapping[str, Any], fleet: Mapping[str, Any], version: str) -> None:
        with self.transaction():
            self._conn.execute(
                "INSERT OR REPLACE INTO runs VALUES (1, ?, ?, ?, ?, 'running', NULL)",
                (
                    datetime.now(timezone.utc).isoformat(),
                    version,
                    json.dumps(config, sort_keys=True),
                    json.dumps(fleet, sort_keys=True),
                ),
            )

    def transaction(self) -> _Transaction:
        self.flush()
        return _Transaction(self._conn)

    def write_round(
        self,
        round_row: Mapping[str, Any],
        client_rows: Sequence[Mapping[str, Any]],
        state: Mapping[str, bytes | Mapping[str, Any]] | None = None,
    ) -> None:
        """One round's rows, and optionally the server state after it, atomically. A state
        value is bytes, or a snapshot (plain values, arrays as buffers) that the writer
        pickles; its arrays must not change until this returns."""
        if self._child is not None:
            self._child.check()
        packed, statuses = pack_rows(client_rows, CLIENT_ROUND_COLUMNS)
        unknown = set(statuses) - _STATUS_SET
        if unknown:
            # Checked here, not by an SQL CHECK: a CHECK (status IN ...) doubled insert time.
            raise LedgerError(f"client status {sorted(unknown)} is none of {list(STATUSES)}")
        row = tuple(round_row[c] for c in ROUND_COLUMNS)
        if self._child is None:
            store.write_round(self._conn, _SQL, row, packed, state)
            return
        # The blocks and the state travel out of band: written to the pipe from where they
        # are, not copied into the message first.
        n, fblock, iblock, desc = packed
        out_of_band = (n, pickle.PickleBuffer(fblock), pickle.PickleBuffer(iblock), desc)
        blobs = {
            k: v if isinstance(v, Mapping) else pickle.PickleBuffer(v)
            for k, v in (state or {}).items()
        }
        self._child.send(("round", row, out_of_band, blobs))

    def flush(self) -> None:
        """Wait until every round sent is committed. A failed write is raised once."""
        if self._child is not None:
            self._child.flush()

    def meta(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM meta").fetchall())

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def finish(self, status: str, stop_reason: str | None) -> None:
        with self.transaction():
            self._conn.execute(
                "UPDATE runs SET status = ?, stop_reason = ? WHERE run_id = 1",
                (status, stop_reason),
            )

    def close(self) -> None:
        """Commit what was sent, stop the writer and close the connection. A failed write
        not reported before is raised here; the ledger closes anyway."""
        try:
            self.flush()
        finally:
            if self._child is not None:
                self._stop()
            self._conn.close()


class _WriterProcess:
    """The writer child and its two pipes. It holds no reference to its LedgerWriter, so a
    writer nobody closed is still collected, and its finalizer lets the child finish."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.proc = subprocess.Popen(
            [sys.executable, "-I", store.__file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._out, self._in = self.proc.stdin, self.proc.stdout
        _widen_pipe(self._out.fileno())
        self.failure: LedgerError | None = None
        self._reported = False
        self._flushes = 0
        self._next_check = 0.0
        self._send(("init", str(path), (ROUND_COLUMNS, CLIENT_ROUND_COLUMNS)))
        reply = self._recv()
        if reply is None or reply[0] != "ready":
            raise LedgerError(self._why_gone(reply))

    @staticmethod
    def supported() -> bool:
        return bool(sys.executable) and sys.platform != "win32"

    def send(self, msg: tuple[Any, ...]) -> None:
        if self.failure is not None:
            raise self.failure  # a round is missing: later ones would leave a hole
        try:
            self._send(msg)
        except OSError:
            self._fail(self._why_gone(None))
            raise self.failure from None

    def check(self) -> None:
        """Pick up an error the writer reported since, without waiting; looked for at most
        every CHECK_EVERY_S (a system call each round would cost the loop more than the
        hand-over itself). Rounds sent after a failed one are not written."""
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + CHECK_EVERY_S
            while self.failure is None and select.select([self._in], [], [], 0)[0]:
                self._handle(self._recv())
        if self.failure is not None:
            raise self.failure

    def flush(self) -> None:
        if self.failure is None:
            self._flushes += 1
            try:
                self._send(("flush", self._flushes))
            except OSError:
                self._fail(self._why_gone(None))
            while self.failure is None:
                msg = self._recv()
                if msg is not None and msg[0] == "flushed" and msg[1] == self._flushes:
                    if msg[2] is not None:
                        self._fail(msg[2])
                    break
                self._handle(msg)
        if self.failure is not None and not self._reported:
            self._reported = True
            raise self.failure

    def stop(self) -> None:
        """Ask the child to finish (it commits everything sent before) and wait for it."""
        if self.proc.poll() is None:
            try:
                self._send(("stop",))
                self._out.close()
            except OSError:
                pass  # it is gone already
            self.proc.wait()
        self._in.close()

    def _handle(self, msg: tuple[Any, ...] | None) -> None:
        if msg is None:
            self._fail(self._why_gone(None))
        elif msg[0] == "error":
            self._fail(msg[1])

    def _fail(self, text: str) -> None:
        if self.failure is None:
            self.failure = LedgerError(f"{text} (every round before it is committed)")

    def _why_gone(self, reply: tuple[Any, ...] | None) -> str:
        if reply is not None and reply[0] == "error":
            return str(reply[1])
        code = self.proc.wait()
        return f"the ledger writer process for {self.path} exited with code {code}"

    def _send(self, msg: tuple[Any, ...]) -> None:
        store.send(self._out, msg)

    def _recv(self) -> tuple[Any, ...] | None:
        return store.recv(self._in)


def _widen_pipe(fd: int) -> None:
    """A 1 MiB pipe (Linux): a round of 1,000 clients (~190 KB) goes in one write, without
    waiting for the child to read."""
    if not sys.platform.startswith("linux"):
        return
    import fcntl

    try:
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except OSError:
        pass  # above /proc/sys/fs/pipe-max-size: the default pipe works, only less ahead


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
