"""Adaptive round parameters: a bandit picks (clients_per_round, local_epochs, batch_size)
each round. Adding a policy is one module plus one line in ADAPTERS."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from greenfl.adapt.bandit import Arm, ThompsonBandit, UCBBandit, make_arms, round_reward

if TYPE_CHECKING:
    from greenfl.adapt.bandit import _Bandit
    from greenfl.config import RunConfig

ADAPTERS: dict[str, Callable[[list[Arm], RunConfig], _Bandit]] = {
    "ucb": lambda arms, c: UCBBandit(arms, c.adapt.exploration),
    "thompson": lambda arms, c: ThompsonBandit(arms),
}


def make_adapter(cfg: RunConfig) -> _Bandit | None:
    """The configured bandit, or None; an empty arm list means the train section's value."""
    a, t = cfg.adapt, cfg.train
    if a.name == "none":
        return None
    arms = make_arms(
        a.clients_per_round or [t.clients_per_round],
        a.local_epochs or [t.local_epochs],
        a.batch_size or [t.batch_size],
    )
    return ADAPTERS[a.name](arms, cfg)


__all__ = ["ADAPTERS", "Arm", "ThompsonBandit", "UCBBandit", "make_adapter", "round_reward"]
