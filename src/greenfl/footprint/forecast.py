"""What a planner knows of the grid: a persistence forecast, or a live provider's own
forecast where the run has one (``ProviderForecast``). The carbon-aware scheduler, the
selectors' cost estimates and the choice of execution target plan on it; the accounting
always charges the real curve. Persistence (tomorrow's hour as today's) is the baseline
every grid-intensity forecast is judged against, and it errs where the real grid does: a
windy night after a still one is missed."""

from __future__ import annotations

from collections.abc import Callable, Sequence

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


class _Issued:
    """One region's curve as a planner knows it: the provider's forecast from ``issued_s``
    on (the curve itself there is the forecast the provider issued), and persistence (the
    history ``lag_s`` earlier) before it, where the real curve is recorded history a
    planner must not see ahead of time."""

    def __init__(self, source: CarbonIntensity, lag_s: float, issued_s: float) -> None:
        self.source = source
        self.lag_s = lag_s
        self.issued_s = issued_s

    def mean(self, t0_s: np.ndarray, t1_s: np.ndarray) -> np.ndarray:
        t0, t1 = np.broadcast_arrays(np.asarray(t0_s, float), np.asarray(t1_s, float))
        return _split_mean(
            lambda a, b: self.source.mean(a, b),
            t0,
            t1,
            np.full(t0.shape, self.issued_s),
            self.lag_s,
        )


def _split_mean(
    mean: Callable[[np.ndarray, np.ndarray], np.ndarray],
    t0: np.ndarray,
    t1: np.ndarray,
    issued: np.ndarray,
    lag_s: float,
) -> np.ndarray:
    """The mean over [t0, t1] of the forecast after ``issued`` and the lagged history
    before it, weighted by the time on each side."""
    after0 = np.minimum(np.maximum(t0, issued), t1)  # where the forecast part starts
    before1 = np.maximum(np.minimum(t1, issued), t0)  # where the history part ends
    span = t1 - t0
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(span > 0, (t1 - after0) / np.where(span > 0, span, 1.0), t0 >= issued)
    m_after = mean(after0, t1)
    m_before = mean(t0 - lag_s, before1 - lag_s)
    return np.where(w >= 1, m_after, np.where(w <= 0, m_before, w * m_after + (1 - w) * m_before))


class ProviderForecast(PersistenceForecast):
    """The planners' view under a live carbon source (``fleet.ci_source``): each live
    region's provider forecast from the hour it was fetched (``issued_s``, seconds from
    the run's start; inf for a region on built-in figures), persistence before it."""

    def __init__(self, real: RegionalIntensity, lag_h: float, issued_s: Sequence[float]) -> None:
        super().__init__(real, lag_h)
        self.issued_s = np.asarray(issued_s, dtype=np.float64)
        self._sources = tuple(
            _Issued(real[i], self.lag_s, float(self.issued_s[i])) for i in range(len(real))
        )
        self._stack = None

    def mean(
        self, region: np.ndarray, t0_s: np.ndarray | float, t1_s: np.ndarray | float
    ) -> np.ndarray:
        region = np.asarray(region)
        t0, t1, reg = np.broadcast_arrays(
            np.asarray(t0_s, dtype=np.float64), np.asarray(t1_s, dtype=np.float64), region
        )
        return _split_mean(
            lambda a, b: self.real.mean(reg, a, b), t0, t1, self.issued_s[reg], self.lag_s
        )
