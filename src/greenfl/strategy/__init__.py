"""Aggregation strategies, by registry name. A new one is one module plus one line below
(or an entry point in the ``greenfl.strategies`` group of an installed package). Each
strategy type declares its ``Params``; the Byzantine-robust ones also ``max_byzantine``,
and ``greenfl.strategy.tolerance.check_tolerance`` refuses one that cannot tolerate the
attackers asked for (docs/robustness.md).

Importing this package imports no strategy (nor torch): the classes live in their modules,
``greenfl.strategy.fedavg.FedAvg`` and so on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from greenfl.core.registry import Registry

if TYPE_CHECKING:
    from greenfl.strategy.base import Strategy

STRATEGIES: Registry[Strategy] = Registry(
    "strategy",
    "greenfl.strategies",
    {
        "fedavg": "greenfl.strategy.fedavg:FedAvg",
        "fedavgm": "greenfl.strategy.fedavgm:FedAvgM",
        "fedprox": "greenfl.strategy.fedprox:FedProx",
        "fedadam": "greenfl.strategy.fedopt:FedAdam",
        "fedyogi": "greenfl.strategy.fedopt:FedYogi",
        "fedadagrad": "greenfl.strategy.fedopt:FedAdagrad",
        "median": "greenfl.strategy.robust:Median",
        "trimmed_mean": "greenfl.strategy.robust:TrimmedMean",
        "krum": "greenfl.strategy.krum:Krum",
        "multikrum": "greenfl.strategy.krum:MultiKrum",
        "bulyan": "greenfl.strategy.krum:Bulyan",
        "geomedian": "greenfl.strategy.geomedian:GeometricMedian",
        "centered_clip": "greenfl.strategy.clipping:CenteredClip",
        "clip": "greenfl.strategy.clipping:NormClip",
        # asynchronous FL (engine.mode = "async" only; docs/async.md)
        "fedbuff": "greenfl.strategy.asynchronous:FedBuff",
        "fedasync": "greenfl.strategy.asynchronous:FedAsync",
    },
)


def make(name: str, **params: Any) -> Strategy:
    """The strategy registered as ``name``, built with these parameters (the others keep
    their defaults): ``make("fedprox", mu=0.1)``."""
    return STRATEGIES.make(name, **params)


def serves_sum(name: str) -> bool:
    """Whether strategy ``name`` needs only the updates' weighted sum, all secure
    aggregation reveals: every strategy but the Byzantine-robust ones, which look at each
    update."""
    from greenfl.strategy.tolerance import RobustStrategy

    return not issubclass(STRATEGIES.lookup(name), RobustStrategy)


__all__ = ["STRATEGIES", "make", "serves_sum"]
