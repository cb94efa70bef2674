"""Aggregation strategies. Adding one is one module plus one line in STRATEGIES."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from greenfl.core.messages import ClientUpdate, FitInstructions
from greenfl.strategy.base import Strategy, weighted_mean_delta
from greenfl.strategy.fedavg import FedAvg
from greenfl.strategy.fedavgm import FedAvgM
from greenfl.strategy.fedopt import FedAdagrad, FedAdam, FedYogi
from greenfl.strategy.fedprox import FedProx
from greenfl.strategy.robust import Median, TrimmedMean

if TYPE_CHECKING:
    from greenfl.config import StrategyConfig

STRATEGIES: dict[str, Callable[[StrategyConfig], Strategy]] = {
    "fedavg": lambda c: FedAvg(),
    "fedavgm": lambda c: FedAvgM(c.server_lr, c.server_momentum),
    "fedprox": lambda c: FedProx(c.mu),
    "fedadam": lambda c: FedAdam(c.server_lr, c.beta1, c.beta2, c.tau),
    "fedyogi": lambda c: FedYogi(c.server_lr, c.beta1, c.beta2, c.tau),
    "fedadagrad": lambda c: FedAdagrad(c.server_lr, c.beta1, c.beta2, c.tau),
    "median": lambda c: Median(),
    "trimmed_mean": lambda c: TrimmedMean(c.trim_fraction),
}


def make_strategy(cfg: StrategyConfig) -> Strategy:
    return STRATEGIES[cfg.name](cfg)


__all__ = [
    "STRATEGIES",
    "ClientUpdate",
    "FedAdagrad",
    "FedAdam",
    "FedAvg",
    "FedAvgM",
    "FedProx",
    "FedYogi",
    "FitInstructions",
    "Median",
    "Strategy",
    "TrimmedMean",
    "make_strategy",
    "weighted_mean_delta",
]
