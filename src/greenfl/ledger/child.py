"""The ledger's writer process as the loop's process sees it: the child (``store.py`` run as
a script), its two pipes, the rounds queued for it, and the thread that sends them.

Why a sending thread: a batch larger than the pipe blocks its writer until the child has
read it, and on a machine busy with other work the child waits for a core, so the loop
stalled in ``write`` (2 of a run's 6 s at load 4). A thread of the loop's process writes the
frames instead, in order, while the loop goes on; it holds the GIL only to pickle a frame's
small header (the numeric blocks go out of band). At most ``OUTBOX`` batches wait for it:
past that the loop waits, so a slow disk cannot fill memory."""

from __future__ import annotations

import pickle
import queue
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from greenfl.core.errors import LedgerError
from greenfl.core.interrupts import atomic
from greenfl.ledger import store
from greenfl.ledger.rows import pack_rounds
from greenfl.ledger.schema import CLIENT_ROUND_COLUMNS, ROUND_COLUMNS

State = Mapping[str, bytes]
StateArg = State | Callable[[], State | None] | None
"""The server state after a round: its rows by key, or a callable that returns them (or
None, if the state has moved on since) when the round is handed over."""

# How often write_round looks for an error the writer process reported.
CHECK_EVERY_S = 0.5
# Messages the sending thread may hold before the loop waits for it.
OUTBOX = 4


class WriterProcess:
    """The writer child, its two pipes and the rounds queued for it. It holds no reference
    to its LedgerWriter, so a writer nobody closed is still collected, and its finalizer
    hands the queue over and lets the child finish."""

    def __init__(self, path: Path, batch_s: float, lock_wait_s: float) -> None:
        self.path = path
        self.batch_s = batch_s
        self.proc = subprocess.Popen(
            [sys.executable, "-I", str(Path(store.__file__).with_name("writer_proc.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            # Its own session: a signal sent to the run's process group (Ctrl-C, `timeout`,
            # `kill -- -PGID`) reaches the loop's process alone, which commits what it has
            # through the writer and marks the run interrupted. Before this the writer died
            # first and rounds the loop had finished were lost with it. (It also ignores
            # SIGTERM itself, for a systemd stop, which signals every process of the unit.)
            start_new_session=True,
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
