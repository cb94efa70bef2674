"""Aggregation strategies. Adding one is one module plus one line in STRATEGIES."""

from __future__ import annotations

from typing import Any

from greenfl.core.registry import make_from
from greenfl.strategy.base import Strategy, weighted_mean_delta
from greenfl.strategy.fedavg import FedAvg
from greenfl.strategy.fedavgm import FedAvgM
from greenfl.strategy.fedopt import FedAdagrad, FedAdam, FedYogi
from greenfl.strategy.fedprox import FedProx
from greenfl.strategy.robust import Median, TrimmedMean

STRATEGIES: dict[str, type[Strategy]] = {
    "fedavg": FedAvg,
    "fedavgm": FedAvgM,
    "fedprox": FedProx,
    "fedadam": FedAdam,
    "fedyogi": FedYogi,
    "fedadagrad": FedAdagrad,
    "median": Median,
    "trimmed_mean": TrimmedMean,
}


def make(name: str, **kwargs: Any) -> Strategy:
    """The strategy registered as ``name``, built with its own keyword arguments."""
    return make_from("strategy", STRATEGIES, name, **kwargs)


__all__ = [
    "STRATEGIES",
    "FedAdagrad",
    "FedAdam",
    "FedAvg",
    "FedAvgM",
    "FedProx",
    "FedYogi",
    "Median",
    "Strategy",
    "TrimmedMean",
    "make",
    "weighted_mean_delta",
]
