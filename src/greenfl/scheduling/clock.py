"""The simulated clock: seconds since the run's configured start, with wall-clock dates."""

from __future__ import annotations

from datetime import datetime, timedelta


class SimClock:
    def __init__(self, start_utc: datetime, now_s: float = 0.0) -> None:
        self.start_utc = start_utc
        self.now_s = now_s

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the simulated clock never runs backwards")
        self.now_s += seconds

    @property
    def now_utc(self) -> datetime:
        return self.start_utc + timedelta(seconds=self.now_s)
