"""torch's intra-op threads, set deliberately for a stretch of work and put back after.

One setting (``engine.threads``) covers every trainer and evaluator of a run: torch's
thread count is process-wide, so the run's session sets it once around the whole run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """``threads`` intra-op threads inside the block (0: leave torch's setting)."""
    saved = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)
