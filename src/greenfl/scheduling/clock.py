"""The simulated clock: seconds since the run's configured start, with wall-clock dates."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from greenfl.core.errors import GreenflError


class ClockOverflow(GreenflError):
    """A step (or a resumed time) past the last date the calendar can name: a footprint
    figure that no real round can have, refused here rather than as a crash later."""


class SimClock:
    def __init__(self, start_utc: datetime, now_s: float = 0.0) -> None:
        self.start_utc = start_utc
        # The seconds from the start that still have a date (years 1 to 9999).
        tz = start_utc.tzinfo
        self.max_s = (datetime.max.replace(tzinfo=tz) - start_utc).total_seconds()
        self.min_s = (datetime.min.replace(tzinfo=tz) - start_utc).total_seconds()
        self.now_s = now_s

    @property
    def now_s(self) -> float:
        return self._now_s

    @now_s.setter
    def now_s(self, value: float) -> None:
        # Checked on every set, so a resumed run's stored time is held to the same bound.
        if not (math.isfinite(value) and self.min_s <= value <= self.max_s):
            raise ClockOverflow(
                f"the simulated clock cannot be set to {value:.4g} s after the run's start: "
                f"it ends at {self.max_s:.4g} s (year 9999)"
            )
        self._now_s = float(value)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the simulated clock never runs backwards")
        if not (math.isfinite(seconds) and self._now_s + seconds <= self.max_s):
            raise ClockOverflow(
                f"refusing to advance the simulated clock by {seconds:.4g} s from "
                f"{self._now_s:.4g} s: past the last date it can name ({self.max_s:.4g} s, "
                "year 9999)"
            )
        self._now_s += seconds

    @property
    def now_utc(self) -> datetime:
        return self.start_utc + timedelta(seconds=self._now_s)
