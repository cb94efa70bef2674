"""SIGTERM's KeyboardInterrupt waits for the end of an atomic block (a frame to the ledger
writer), so the pipe is never left mid-frame."""

from __future__ import annotations

import os
import signal

import pytest

from greenfl.core.interrupts import atomic, raise_interrupt


def test_an_interrupt_inside_an_atomic_block_is_raised_as_it_ends() -> None:
    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    done = []
    try:
        with pytest.raises(KeyboardInterrupt):
            with atomic():
                os.kill(os.getpid(), signal.SIGTERM)
                with atomic():  # nested: still held
                    done.append("inner")
                done.append("outer")  # the whole block ran
        assert done == ["inner", "outer"]
    finally:
        signal.signal(signal.SIGTERM, previous)
