"""Bounds on what a flood of requests can cost a server: a token bucket on Join, and log
lines for refusals at a bounded rate (one per reason per interval, with a count of those
suppressed), so 3,000 bad joins neither take the server's time nor fill its log."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


class TokenBucket:
    """``rate_per_s`` requests a second on average, bursts of up to ``burst``."""

    def __init__(
        self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Whether one request may go ahead now."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate_per_s)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False


class BoundedLog:
    """Warnings at most once per ``interval_s`` per key; the next line says how many were
    suppressed in between."""

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self._clock = clock
        self._next: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def warning(self, key: str, msg: str, *args: object) -> None:
        with self._lock:
            now = self._clock()
            if now < self._next.get(key, -float("inf")):
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return
            self._next[key] = now + self.interval_s
            skipped = self._suppressed.pop(key, 0)
        if skipped:
            msg += f" ({skipped} more like it in the last {self.interval_s:g} s not logged)"
        self.logger.warning(msg, *args)
