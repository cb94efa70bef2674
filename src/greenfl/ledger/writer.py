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

Why a sending thread: a batch larger than the pipe blocks its writer until the child has
read it, and on a machine busy with other work the child waits for a core, so the loop
stalled in ``write`` (2 of a run's 6 s at load 4). A thread of the loop's process writes the
frames instead, in order, while the loop goes on; it holds the GIL only to pickle a frame's
small header (the numeric blocks go out of band). At most ``OUTBOX`` batches wait for it:
past that the loop waits, so a slow disk cannot fill memory.

A failed write stops the writer: ``write_round`` raises ``LedgerError`` naming the rounds
from then on, ``flush`` raises it once, and every round committed before it stays."""

from __future__ import annotations

import json
import logging
import pickle
import queue
import select
import sqlite3
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

from greenfl.core.errors import LedgerError
from greenfl.core.interrupts import atomic
from greenfl.ledger import store
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

State = Mapping[str, bytes]
StateArg = State | Callable[[], State | None] | None
"""The server state after a round: its rows by key, or a callable that returns them (or
None, if the state has moved on since) when the round is handed over."""


log = logging.getLogger("greenfl.ledger")
_STATUS_SET = frozenset(STATUSES)
_SQL = store.RoundSQL(ROUND_COLUMNS, CLIENT_ROUND_COLUMNS)
# How often write_round looks for an error the writer process reported.
CHECK_EVERY_S = 0.5
# How long a new writer waits for an earlier writer of the same file to finish.
LOCK_WAIT_S = 10.0
# Messages the sending thread may hold before the loop waits for it.
OUTBOX = 4


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
        self._child: _WriterProcess | None = None
        if self.path is not None and background and _WriterProcess.supported():
            # First: the child locks the file, so an earlier writer of it has finished
            # (waiting up to lock_wait_s: a killed run's writer committing its last rounds).
            try:
                self._child = _WriterProcess(self.path, batch_s, lock_wait_s)
            except OSError as exc:  # no process to be had (limits, no executable): inline
                log.warning("ledger writer process did not start (%s); writing inline", exc)
            else:
                self._stop = weakref.finalize(self, self._child.stop)
        self._conn = store.connect(str(self.path) if self.path is not None else ":memory:")
        self._conn.executescript(DDL)
        migrate(self._conn)
        self._conn.execute(
            "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )

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

    def transaction(self) -> store.Transaction:
        self.flush()
        return store.Transaction(self._conn)

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
        store.write_rounds(self._conn, _SQL, [row], packed, blobs)

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
        with self.transaction():
            self._conn.execute(
                "UPDATE runs SET status = ?, stop_reason = ? WHERE run_id = 1",
                (status, stop_reason),
            )

    def close(self) -> None:
        """Commit what is queued, stop the writer and close the connection. A failed write
        not reported before is raised here; the ledger closes anyway."""
        try:
            self.flush()
        finally:
            if self._child is not None:
                self._stop()
            self._conn.close()
            while self.on_close:
                self.on_close.pop()()


class _WriterProcess:
    """The writer child, its two pipes and the rounds queued for it. It holds no reference
    to its LedgerWriter, so a writer nobody closed is still collected, and its finalizer
    hands the queue over and lets the child finish."""

    def __init__(self, path: Path, batch_s: float, lock_wait_s: float) -> None:
        self.path = path
        self.batch_s = batch_s
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
        self._outstanding = False  # rounds sent and not yet confirmed committed
        self._next_check = 0.0
        self._due = 0.0
        self._rows: list[tuple[Any, ...]] = []
        self._clients: list[Sequence[Mapping[str, Any]]] = []
        self._state: StateArg = None
        self._send_now(("init", str(path), (ROUND_COLUMNS, CLIENT_ROUND_COLUMNS), lock_wait_s))
        reply = self._recv()
        if reply is None or reply[0] != "ready":
            raise LedgerError(self._why_gone(reply))
        self._outbox: queue.Queue[tuple[Any, ...] | None] = queue.Queue(maxsize=OUTBOX)
        self._send_error: OSError | None = None
        self._sender = threading.Thread(
            target=self._send_loop, name="greenfl-ledger-send", daemon=True
        )
        self._sender.start()

    @staticmethod
    def supported() -> bool:
        return bool(sys.executable) and sys.platform != "win32"

    def add(
        self, row: tuple[Any, ...], clients: Sequence[Mapping[str, Any]], state: StateArg
    ) -> None:
        if self.failure is not None:
            self._raise()  # a round is missing: later ones would leave a hole
        self._rows.append(row)
        self._clients.append(clients)
        self._state = state  # only the state after the last queued round is kept
        if time.monotonic() >= self._due:
            self.hand_over()

    def hand_over(self) -> None:
        """Send the queued rounds, and the state after the last of them if it can still be
        had (a callable returns None once the loop has moved on: the rounds then go without
        it, and a resumed run re-runs them)."""
        if not self._rows or self.failure is not None:
            return
        state = self._state() if callable(self._state) else self._state
        # Deferred rows (greenfl.ledger.rows.DeferredRows) are built here, the batch at once.
        fblock, iblock, desc = pack_rounds(self._clients, CLIENT_ROUND_COLUMNS)
        # The blocks and the state travel out of band: written to the pipe from where they
        # are, not copied into the message first.
        packed = (pickle.PickleBuffer(fblock), pickle.PickleBuffer(iblock), desc)
        blobs = {k: pickle.PickleBuffer(v) for k, v in (state or {}).items()}
        rows = self._rows
        self._rows, self._clients, self._state = [], [], None
        self._due = time.monotonic() + self.batch_s
        try:
            self._send(("rounds", rows, packed, blobs))
            self._outstanding = True
        except OSError:
            self._fail(self._why_gone(None))
            self._raise()

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
            self._raise()

    def flush(self) -> None:
        """Wait until every round sent is committed. Nothing sent since the last flush:
        nothing to wait for (a round trip to the child costs a scheduling wait on each
        side, which on a loaded machine is most of a short run's end)."""
        if self.failure is None:
            self.hand_over()
        if self.failure is None and not self._outstanding:
            self.check()  # an error reported since, without waiting
            return
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
                    self._outstanding = False
                    break
                self._handle(msg)
        if self.failure is not None and not self._reported:
            self._raise()

    def stop(self) -> None:
        """Hand over what is queued, ask the child to finish (it commits everything sent
        before) and wait for it."""
        if self.proc.poll() is None:
            try:
                self.hand_over()
                self._send(("stop",))
            except (OSError, LedgerError):
                pass  # it is gone already; the failure was or will be reported
        self._outbox.put(None)  # the sending thread ends once every frame before is out
        self._sender.join()
        try:
            self._out.close()
        except OSError:
            pass
        self.proc.wait()
        self._in.close()

    def _raise(self) -> NoReturn:
        assert self.failure is not None
        self._reported = True
        raise self.failure

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
        """Queue ``msg`` for the sending thread (in order; waits while OUTBOX are queued).
        An OSError the thread met (the child is gone) is raised here, on the next send."""
        if self._send_error is not None:
            raise self._send_error
        self._outbox.put(msg)

    def _send_loop(self) -> None:
        """(the sending thread) Each queued message, a whole frame at a time; after a
        failed one, the rest are dropped (the child is gone: its failure is reported)."""
        while (msg := self._outbox.get()) is not None:
            if self._send_error is None:
                try:
                    store.send(self._out, msg)
                except OSError as exc:
                    self._send_error = exc

    def _send_now(self, msg: tuple[Any, ...]) -> None:
        with atomic():  # a whole frame or none: see core.interrupts
            store.send(self._out, msg)

    def _recv(self) -> tuple[Any, ...] | None:
        with atomic():
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
