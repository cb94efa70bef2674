"""Adaptive round parameters: a bandit picks (clients_per_round, local_epochs, batch_size)
each round. Adding a policy is one module plus one line in ADAPTERS."""

from __future__ import annotations

from typing import Any

from greenfl.adapt.bandit import (
    Arm,
    Bandit,
    PooledThompsonBandit,
    ThompsonBandit,
    UCBBandit,
    make_arms,
    round_gain,
    round_reward,
)
from greenfl.core.registry import make_from

ADAPTERS: dict[str, type[Bandit]] = {
    "ucb": UCBBandit,
    "thompson": ThompsonBandit,
    "pooled": PooledThompsonBandit,
}


def make(name: str, arms: list[Arm], **kwargs: Any) -> Bandit:
    """The bandit registered as ``name`` over ``arms``, built with its own keyword arguments."""
    return make_from("adapter", ADAPTERS, name, arms, **kwargs)


__all__ = [
    "ADAPTERS",
    "Arm",
    "Bandit",
    "PooledThompsonBandit",
    "ThompsonBandit",
    "UCBBandit",
    "make",
    "make_arms",
    "round_gain",
    "round_reward",
]
