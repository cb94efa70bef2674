"""One run's lifecycle, shared by ``greenfl.run`` (simulation) and ``greenfl serve``
(deployment): run the loop, mark the ledger completed, failed or interrupted, write
config.json and summary.json, and close the transport and the ledger in every case."""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greenfl.core.files import check_out_dir as check_out_dir  # the API's folder check
from greenfl.core.interrupts import raise_interrupt
from greenfl.core.threads import torch_threads
from greenfl.engine.loop import RoundLoop

log = logging.getLogger("greenfl.session")

INTERRUPTED = "interrupted"


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped the run; the rounds already finished are in the ledger.
    A KeyboardInterrupt still, so code that catches that keeps working."""

    def __init__(self, rounds_done: int, out_dir: Path | None) -> None:
        super().__init__(f"interrupted after round {rounds_done}")
        self.rounds_done = rounds_done
        self.out_dir = out_dir


@dataclass(frozen=True)
class SessionResult:
    stop_reason: str
    summary: dict[str, Any]


def write_outputs(out: Path, config: dict[str, Any], summary: dict[str, Any]) -> None:
    """config.json (the run's config, as plain data) and summary.json beside the ledger."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (kill, systemd, docker stop) and SIGHUP (the terminal closed) end a run the
    way Ctrl-C does: the ledger is marked interrupted and the run can be resumed. Python
    only lets the main thread set a handler; elsewhere (a run started from a worker
    thread) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signums = [signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])]
    previous = {s: signal.signal(s, raise_interrupt) for s in signums}
    # A process inherits its parent's blocked signals: blocked, a SIGTERM or SIGHUP would
    # wait unseen until the run's end (a test runner or supervisor that blocked one made a
    # run ignore it). Unblocked for the run, the mask put back after.
    unblock = hasattr(signal, "pthread_sigmask")
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, signums) if unblock else set()
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if unblock:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def run_session(
    loop: RoundLoop,
    config: dict[str, Any],
    out_dir: Path | None,
    *,
    start: Callable[[], None] | None = None,
    abort: Callable[[], None] | None = None,
) -> SessionResult:
    """Run ``loop`` to its end; ``config`` (the run's config as plain data) goes to
    config.json. ``start`` runs first, inside the same guard (serve starts its gRPC server
    there); ``abort`` replaces ``transport.close()`` when the run does not complete (serve
    stops without telling the clients, so they wait for ``--resume``). Ctrl-C and SIGTERM
    raise RunInterrupted after the ledger is marked ``interrupted``. torch's threads are
    the run's own (engine.threads) throughout."""
    try:
        with sigterm_as_interrupt(), torch_threads(loop.parts.settings.threads):
            if start is not None:
                start()
            reason = loop.run()
            loop.ledger.finish("completed", reason)
            summary = loop.summary()
    except KeyboardInterrupt:
        _give_up(loop, abort, INTERRUPTED, INTERRUPTED)
        raise RunInterrupted(loop.state.round, out_dir) from None
    except BaseException as exc:
        _give_up(loop, abort, "failed", _reason(exc))
        raise
    loop.transport.close()
    if out_dir is not None:
        write_outputs(out_dir, config, summary)
    loop.ledger.close()
    return SessionResult(reason, summary)


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__


def _give_up(loop: RoundLoop, abort: Callable[[], None] | None, status: str, reason: str) -> None:
    """Record why the run ended and release everything; a second failure here is logged,
    not raised, so the first one (or the interrupt) is what the caller sees."""
    steps: list[Callable[[], None]] = [
        lambda: loop.ledger.finish(status, reason),
        abort if abort is not None else loop.transport.close,
        loop.ledger.close,
    ]
    for step in steps:
        try:
            step()
        except (Exception, KeyboardInterrupt) as exc:  # noqa: PERF203 - each step must run
            log.warning("while ending the run: %s", exc or type(exc).__name__)
