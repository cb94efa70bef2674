"""What a planner knows of the grid: a persistence forecast. The carbon-aware scheduler, the
selectors' cost estimates and the choice of execution target plan on it; the accounting
always charges the real curve. Persistence (tomorrow's hour as today's) is the baseline
every grid-intensity forecast is judged against, and it errs where the real grid does: a
windy night after a still one is missed."""

from __future__ import annotations

import numpy as np

from greenfl.core.units import S_PER_HOUR
from greenfl.footprint.intensity import CarbonIntensity, RegionalIntensity


class _Lagged:
    """One region's curve seen ``lag_s`` late."""

    def __init__(self, source: CarbonIntensity, lag_s: float) -> None:
        self.source = source
        self.lag_s = lag_s

    def mean(self, t0_s: np.ndarray, t1_s: np.ndarray) -> np.ndarray:
        return self.source.mean(np.asarray(t0_s) - self.lag_s, np.asarray(t1_s) - self.lag_s)


class PersistenceForecast(RegionalIntensity):
    """The intensity over [t0, t1] forecast as the real one over [t0 - lag, t1 - lag]:
    with a 24 h lag, the same hours yesterday. Known at planning time for any horizon up
    to the lag (the factories refuse a scheduler that looks further ahead)."""

    def __init__(self, real: RegionalIntensity, lag_h: float = 24.0) -> None:
        self.real = real
        self.lag_s = lag_h * S_PER_HOUR
        super().__init__([_Lagged(real[i], self.lag_s) for i in range(len(real))])

    def steady(self, t0_s: float) -> tuple[float, list[float]] | None:
        return None  # only the accounting's fast path asks, and it never plans

    def mean(
        self, region: np.ndarray, t0_s: np.ndarray | float, t1_s: np.ndarray | float
    ) -> np.ndarray:
        lag = self.lag_s
        return self.real.mean(region, np.asarray(t0_s) - lag, np.asarray(t1_s) - lag)
