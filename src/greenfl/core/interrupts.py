"""Interrupts that wait for a message boundary.

SIGTERM and SIGHUP end a run by raising KeyboardInterrupt in the main thread (see
engine.session). Raised in the middle of a message to the ledger writer, it would leave the
pipe between them mid-frame, and both ends would then wait on each other forever. Code that
must finish a frame runs inside ``atomic()``; a signal arriving there is held and raised as
the block ends."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_depth = 0
_held = False


def raise_interrupt(signum: int, frame: FrameType | None) -> None:
    """A signal handler: KeyboardInterrupt now, or when the running ``atomic()`` block
    ends."""
    global _held
    if _depth:
        _held = True
        return
    raise KeyboardInterrupt


@contextmanager
def atomic() -> Iterator[None]:
    """Hold ``raise_interrupt`` until the block ends (main thread only: handlers run there)."""
    global _depth, _held
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if not _depth and _held:
            _held = False
            raise KeyboardInterrupt
