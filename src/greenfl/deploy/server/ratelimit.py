"""Bounds on what a flood of requests can cost a server: token buckets on Join, one per
source address and one per client id (``KeyedBuckets``), and log lines for refusals at a
bounded rate (one per reason per interval, with a count of those suppressed), so 3,000 bad
joins neither take the server's time nor fill its log."""

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

    def full(self) -> bool:
        """Whether the bucket has refilled to its burst (as good as a new one)."""
        with self._lock:
            refill = (self._clock() - self._last) * self.rate_per_s
            return self._tokens + refill >= self.burst


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


class KeyedBuckets:
    """One TokenBucket per key (a source address, a client id), so that one key's flood
    spends its own budget and nobody else's. At most ``max_keys`` are kept: past that, the
    buckets that have refilled (the same as new ones) are forgotten, and if none has, the
    request is refused (a spray over that many keys at once is a flood in itself)."""

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        max_keys: int = 65_536,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: dict[object, TokenBucket] = {}
        self._lock = threading.Lock()

    def take(self, key: object) -> bool:
        """Whether one request of ``key`` may go ahead now."""
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self.max_keys and not self._forget_full():
                    return False
                bucket = TokenBucket(self.rate_per_s, self.burst, self._clock)
                self._buckets[key] = bucket
        return bucket.take()

    def retry_after_s(self) -> float:
        """Seconds until a spent bucket has one request again."""
        return 1.0 / self.rate_per_s

    def _forget_full(self) -> bool:
        """(lock held) Drop the buckets back at full burst; whether any was."""
        full = [k for k, b in self._buckets.items() if b.full()]
        for k in full:
            del self._buckets[k]
        return bool(full)


def source_of(peer: str) -> str:
    """The source address of a gRPC peer string ("ipv4:10.0.0.7:53112" -> "ipv4:10.0.0.7",
    "ipv6:[::1]:5000" -> "ipv6:[::1]"): its port changes with every connection."""
    head, sep, port = peer.rpartition(":")
    return head if sep and port.isdigit() and ":" in head else peer
