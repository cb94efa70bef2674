"""Adaptive round parameters: a bandit picks (clients_per_round, local_epochs, batch_size)
each round. A new policy is one module plus one line below (or an entry point in the
``greenfl.adapters`` group); its type declares ``Params`` and is built as
``Type(arms, params)``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from greenfl.core.registry import Registry

if TYPE_CHECKING:
    from greenfl.adapt.bandit import Arm, Bandit

ADAPTERS: Registry[Bandit] = Registry(
    "adapter",
    "greenfl.adapters",
    {
        "ucb": "greenfl.adapt.bandit:UCBBandit",
        "thompson": "greenfl.adapt.bandit:ThompsonBandit",
        "pooled": "greenfl.adapt.bandit:PooledThompsonBandit",
    },
)


def make(name: str, arms: list[Arm], **params: Any) -> Bandit:
    """The bandit registered as ``name`` over ``arms``, built with these parameters."""
    return ADAPTERS.make(name, arms, **params)


__all__ = ["ADAPTERS", "make"]
