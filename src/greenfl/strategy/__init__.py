"""Aggregation strategies. Adding one is one module plus one line in STRATEGIES. The
Byzantine-robust ones declare ``max_byzantine``; ``check_tolerance`` refuses a strategy that
cannot tolerate the attackers asked for (see docs/robustness.md)."""

from __future__ import annotations

from typing import Any

from greenfl.core.registry import make_from
from greenfl.strategy.base import Strategy, weighted_mean_delta
from greenfl.strategy.clipping import CenteredClip, NormClip
from greenfl.strategy.fedavg import FedAvg
from greenfl.strategy.fedavgm import FedAvgM
from greenfl.strategy.fedopt import FedAdagrad, FedAdam, FedYogi
from greenfl.strategy.fedprox import FedProx
from greenfl.strategy.geomedian import GeometricMedian
from greenfl.strategy.krum import Bulyan, Krum, MultiKrum
from greenfl.strategy.robust import Median, TrimmedMean
from greenfl.strategy.tolerance import RobustStrategy, check_tolerance

STRATEGIES: dict[str, type[Strategy]] = {
    "fedavg": FedAvg,
    "fedavgm": FedAvgM,
    "fedprox": FedProx,
    "fedadam": FedAdam,
    "fedyogi": FedYogi,
    "fedadagrad": FedAdagrad,
    "median": Median,
    "trimmed_mean": TrimmedMean,
    "krum": Krum,
    "multikrum": MultiKrum,
    "bulyan": Bulyan,
    "geomedian": GeometricMedian,
    "centered_clip": CenteredClip,
    "clip": NormClip,
}

# What secure aggregation, which reveals only the sum of the updates, can serve: every
# strategy but the robust ones is a function of the updates' weighted mean.
SUM_STRATEGIES = frozenset(n for n, c in STRATEGIES.items() if not issubclass(c, RobustStrategy))


def make(name: str, **kwargs: Any) -> Strategy:
    """The strategy registered as ``name``, built with its own keyword arguments."""
    return make_from("strategy", STRATEGIES, name, **kwargs)


__all__ = [
    "STRATEGIES",
    "SUM_STRATEGIES",
    "Bulyan",
    "CenteredClip",
    "FedAdagrad",
    "FedAdam",
    "FedAvg",
    "FedAvgM",
    "FedProx",
    "FedYogi",
    "GeometricMedian",
    "Krum",
    "Median",
    "MultiKrum",
    "NormClip",
    "RobustStrategy",
    "Strategy",
    "TrimmedMean",
    "check_tolerance",
    "make",
    "weighted_mean_delta",
]
