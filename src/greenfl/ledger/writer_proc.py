"""The ledger writer process: started by greenfl.ledger.child as a script,
``python -I writer_proc.py``, it commits the rounds the loop's process sends over its stdin
(greenfl.ledger.store: the messages, the SQL, the hash chain's links) until "stop" or the
end of its input. Standard library only: run as a script it imports store.py from beside
it as a module of its own, never greenfl (whose package imports numpy), so it starts in
tens of milliseconds; imported as greenfl.ledger.writer_proc (tests), it uses the package's.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections.abc import Sequence
from typing import Any, BinaryIO

if __name__ == "__main__":
    sys.path.append(os.path.dirname(os.path.abspath(__file__)))
    import store  # type: ignore[import-not-found, no-redef]
else:
    from greenfl.ledger import store

NICE = 10  # the writer process's niceness (see __main__)


def _span(round_rows: Sequence[Sequence[Any]]) -> str:
    first, last = round_rows[0][0], round_rows[-1][0]
    return f"round {first}" if first == last else f"rounds {first}-{last}"


def _lock(path: str, wait_s: float) -> Any:
    import fcntl

    fh = open(path, "rb")  # noqa: SIM115 - held open, and locked, for the process's life
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fh
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{path} is still being written by another ledger writer after "
                    f"{wait_s:g} s (a run on this folder that is still open, in this "
                    "process or another)"
                ) from None
            time.sleep(0.01)


def serve(inp: BinaryIO, out: BinaryIO) -> int:
    """The child's loop: commit each round as it arrives until "stop" or end of input (the
    parent exited, or was killed: every round it had sent is still committed)."""
    init = store.recv(inp)
    if init is None:
        return 0
    _, path, sql_args, lock_wait_s = init
    try:
        conn = store.connect(path)
        lock = _lock(path, lock_wait_s)
    except (sqlite3.Error, OSError) as exc:
        store.send(out, ("error", f"the ledger writer could not open {path}: {exc}"))
        return 1
    sql = store.RoundSQL(*sql_args)
    store.send(out, ("ready", os.getpid()))
    failure: str | None = None
    # No checkpoints of our own while the run goes on (SQLite's automatic one at 1,000 WAL
    # pages aside): moving the WAL into the file when idle cost the round loop more, in
    # measured round time, than it saved when the ledger closes.
    while True:
        msg = store.recv(inp)
        if msg is None or msg[0] == "stop":
            break
        if msg[0] == "rounds":
            if failure is not None:  # a round is missing: later ones would leave a hole
                continue
            try:
                store.write_rounds(conn, sql, *msg[1:])
            except (sqlite3.Error, ValueError, TypeError, OverflowError) as exc:
                failure = f"the ledger could not write {_span(msg[1])}: {store.why(exc, path)}"
                store.send(out, ("error", failure))
        elif msg[0] == "flush":
            store.send(out, ("flushed", msg[1], failure))
    conn.close()
    lock.close()
    if msg is not None:
        store.send(out, ("ok",))
    return 0


if __name__ == "__main__":
    import signal

    # Ctrl-C, and SIGTERM or SIGHUP sent to the whole process group (systemd's stop,
    # `timeout`, a closed terminal), reach the writer too: the parent handles them (and
    # marks the run interrupted), and the writer must go on until it has committed what it
    # was sent. It ends when the parent closes its pipe, whether the parent stopped it or
    # died; a SIGKILL (systemd's after TimeoutStopSec) still ends it at once.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    # Rarely preempt the round loop: woken by a round, a normal-priority writer took the
    # loop's core on the spot (the scheduler favours a task that slept), which cost the loop
    # the whole write. Nice 10 weighs a tenth of the loop, so it runs on a free core or when
    # the loop waits. Not the idle class (as before): on a machine busy with other work an
    # idle-class writer never ran, and a run's end waited 14 s for 0.06 s of writing.
    os.nice(NICE)
    code = serve(sys.stdin.buffer, sys.stdout.buffer)
    sys.stdout.flush()
    os._exit(code)  # everything is closed and committed: skip the interpreter's teardown
