"""An ordered background worker: jobs run one at a time, in the order handed over, on one
thread; a job's error surfaces on the caller's thread at its next call.

The ledger writer uses it so that SQLite's inserts and commits of round N overlap round N+1's
training instead of adding to it (the sqlite3 module releases the GIL while SQLite works)."""

from __future__ import annotations

import atexit
import queue
import threading
from collections.abc import Callable


class WorkerFailed(RuntimeError):
    """A job handed over earlier failed; nothing after it was run."""


class OrderedWorker:
    """``submit`` hands a job over (blocking once ``depth`` jobs wait, so a slow disk slows
    the producer instead of filling memory); ``flush`` waits until every job handed over has
    run and raises the first job error, if any. After an error, later jobs are skipped and
    every later call raises, so nothing is written out of order past a failure."""

    def __init__(self, name: str, depth: int = 2) -> None:
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._reported = False
        self._thread = threading.Thread(target=self._drain, name=name, daemon=True)
        self._thread.start()
        # A daemon thread dies with the interpreter: flush first, so an ending program (or one
        # leaving through an exception nobody caught) loses no job already handed over.
        atexit.register(self.close)

    def submit(self, job: Callable[[], None]) -> None:
        self._raise_if_failed()
        if not self._thread.is_alive():
            raise WorkerFailed(f"{self._thread.name} is closed")
        self._jobs.put(job)

    def flush(self) -> None:
        if self._thread.is_alive():
            self._jobs.join()
        self._raise_if_failed()

    def close(self) -> None:
        """Run what is queued, then stop the thread. Safe to call more than once."""
        atexit.unregister(self.close)
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()

    def _raise_if_failed(self) -> None:
        if self._error is None:
            return
        if not self._reported:
            self._reported = True
            raise self._error
        raise WorkerFailed(f"{self._thread.name} stopped after an error: {self._error}")

    def _drain(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                if self._error is None:
                    job()
            # Not swallowed: kept and raised on the producer's thread at its next call.
            except BaseException as exc:  # noqa: BLE001
                self._error = exc
            finally:
                self._jobs.task_done()
