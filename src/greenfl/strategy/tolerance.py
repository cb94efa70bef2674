"""How many Byzantine (arbitrarily wrong) updates a strategy tolerates, the config-time check
that it can honour what is asked, and the round-time rule when drop-outs leave too few.

Every robust strategy declares ``max_byzantine(num_updates)``: the most Byzantine updates
among ``num_updates`` its guarantee covers, or -1 when it cannot aggregate that many updates
at all (Krum needs three). At aggregation time a round with too few updates for the
strategy's own ``num_byzantine`` keeps the global model unchanged: a skipped round costs
progress, while a robust rule run outside its guarantee could let attackers steer the
model, which is what the operator chose a robust strategy to prevent."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from pydantic import Field

from greenfl.core.errors import ConfigError
from greenfl.core.messages import ClientUpdate
from greenfl.core.registry import params
from greenfl.strategy.base import StatelessStrategy

log = logging.getLogger("greenfl.strategy")

# The search for the cohort size a tolerance needs stops here: past it the answer is
# "no cohort size suffices" (clip), and no deployment aggregates more updates a round.
MAX_COHORT = 100_000


@params
class ByzantineParams:
    """The parameter every Byzantine-robust strategy takes."""

    byzantine: int | None = Field(
        None,
        ge=0,
        le=MAX_COHORT,
        description="Byzantine updates per round to tolerate (f); none: the expected "
        "attackers in a cohort, ceil(attack.fraction x clients_per_round); a strategy that "
        "cannot tolerate f at clients_per_round is refused",
    )


def require(name: str, ok: bool, what: str) -> None:
    """A constructor argument check: ConfigError ``strategy 'name': what`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"strategy {name!r}: {what}")


def checked_byzantine(name: str, num_byzantine: int) -> int:
    """``num_byzantine`` as an int, refused unless a whole number >= 0 (a config mistake)."""
    whole = not isinstance(num_byzantine, bool) and int(num_byzantine) == num_byzantine
    require(
        name,
        whole and num_byzantine >= 0,
        f"num_byzantine must be an integer >= 0, not {num_byzantine!r}",
    )
    return int(num_byzantine)


class RobustStrategy(StatelessStrategy):
    """Base of the Byzantine-robust strategies: the too-few-updates rule in one place.

    Subclasses set ``name``, ``num_byzantine`` and implement ``max_byzantine``,
    ``_aggregate_delta`` (the robust aggregate of the deltas, at least one update, enough
    for ``num_byzantine``) and ``_flops``."""

    name: str
    Params: ClassVar[type] = ByzantineParams
    num_byzantine: int = 0
    skipped_rounds: int = 0  # rounds kept unchanged for too few updates, for diagnostics
    # Clipping bounds each update's pull instead of out-voting attackers, so it is held to
    # an explicit strategy.byzantine only, never to a simulated attack's expected count.
    bounds_each_update: ClassVar[bool] = False
    # The fewest updates a round of this strategy must be configured for, and why.
    min_updates: int = 1
    min_updates_why: str = ""

    def __init__(self, params: ByzantineParams | None = None) -> None:
        p = params if params is not None else self.Params()
        self.num_byzantine = checked_byzantine(self.name, p.byzantine or 0)

    def max_byzantine(self, num_updates: int) -> int:
        raise NotImplementedError

    def share_hint(self, share: float) -> str:
        """What to change when no cohort tolerates a ``share`` of attackers ("" if none)."""
        return ""

    def can_aggregate(self, num_updates: int) -> bool:
        """Whether ``num_updates`` is enough to honour this strategy's ``num_byzantine``."""
        return num_updates >= 1 and self.max_byzantine(num_updates) >= self.num_byzantine

    def _aggregate_delta(
        self, global_params: torch.Tensor, updates: Sequence[ClientUpdate]
    ) -> torch.Tensor:
        raise NotImplementedError

    def _flops(self, num_updates: int, num_params: int) -> int:
        raise NotImplementedError

    def aggregate(
        self, global_params: torch.Tensor, updates: Sequence[ClientUpdate]
    ) -> torch.Tensor:
        if not self.can_aggregate(len(updates)):
            self.skipped_rounds += 1
            log.warning(
                "%s: %d update(s) cannot tolerate num_byzantine=%d; the global model is kept "
                "unchanged this round",
                self.name,
                len(updates),
                self.num_byzantine,
            )
            return global_params.clone()
        return global_params + self._aggregate_delta(global_params, updates)

    def aggregation_flops(self, num_updates: int, num_params: int) -> int:
        # a skipped round computes nothing
        return self._flops(num_updates, num_params) if self.can_aggregate(num_updates) else 0


def max_byzantine_of(strategy: object, num_updates: int) -> int:
    """``strategy.max_byzantine(num_updates)`` for a robust strategy; any other (fedavg,
    fedadam, ...) tolerates none: one update can move a mean anywhere."""
    if isinstance(strategy, RobustStrategy):
        return strategy.max_byzantine(num_updates)
    return 0 if num_updates >= 1 else -1


def min_updates_for(strategy: object, num_byzantine: int) -> int | None:
    """The smallest cohort in which ``strategy`` tolerates ``num_byzantine`` updates; None
    when no cohort size suffices."""
    for n in range(1, MAX_COHORT + 1):
        if max_byzantine_of(strategy, n) >= num_byzantine:
            return n
    return None


def check_tolerance(
    strategy: object, num_updates: int, num_byzantine: int, attack_share: float | None = None
) -> None:
    """Refuse, with a ConfigError of one sentence, a strategy that cannot tolerate
    ``num_byzantine`` Byzantine updates among ``num_updates`` (clients per round), or one
    built for fewer attackers than asked (Krum and Bulyan score with their own
    ``num_byzantine``). ``attack_share``: f was derived from a share of attackers, so it
    grows with the cohort; the message then says whether any cohort can do, and if none
    can, what must change instead."""
    robust = isinstance(strategy, RobustStrategy)
    name = strategy.name if robust else type(strategy).__name__.lower()
    f = checked_byzantine(name, num_byzantine)
    built_for = strategy.num_byzantine if robust else 0
    needed_f = max(f, built_for)
    if max_byzantine_of(strategy, num_updates) < needed_f:
        lead = (
            f"strategy {name!r} cannot tolerate f={needed_f} Byzantine updates among "
            f"n={num_updates} clients per round"
        )
        if attack_share is not None and attack_share > 0:
            needed_n = min_cohort_for_share(strategy, attack_share, num_updates)
            if needed_n is None:
                hint = strategy.share_hint(attack_share) if robust else ""
                raise ConfigError(
                    f"{lead}, and no larger cohort will do: a share of {attack_share:g} "
                    f"attackers grows with the cohort. {hint or _CHOOSE}"
                )
            raise ConfigError(
                f"{lead}: with a share of {attack_share:g} attackers it needs n >= {needed_n}"
            )
        needed_n = min_updates_for(strategy, needed_f)
        if needed_n is None:
            raise ConfigError(f"{lead}, nor among any number: {_CHOOSE}")
        raise ConfigError(f"{lead}: it needs n >= {needed_n}")
    if robust and built_for < f:
        raise ConfigError(
            f"strategy {name!r} was built for byzantine={built_for} but must tolerate "
            f"f={f} Byzantine updates: set strategy.params.byzantine = {f}"
        )


_CHOOSE = "choose krum, multikrum, bulyan, median, trimmed_mean, geomedian or centered_clip"


def min_cohort_for_share(strategy: object, share: float, start: int = 1) -> int | None:
    """The smallest cohort n >= ``start`` in which ``strategy`` tolerates ceil(share x n)
    attackers; None when none up to MAX_COHORT does."""
    for n in range(max(start, 1), MAX_COHORT + 1):
        if max_byzantine_of(strategy, n) >= math.ceil(share * n - 1e-9):
            return n
    return None
