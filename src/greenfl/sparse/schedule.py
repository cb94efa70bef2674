"""When the server prunes, and to which sparsity: the gradual polynomial schedule of Zhu &
Gupta (2017, "To prune, or not to prune", eq. 1) over rounds,

    s_t = s_f + (s_i - s_f) (1 - (t - t_0) / (n dt))^3,   t in {t_0, t_0 + dt, ..., t_0 + n dt}

with initial sparsity s_i = 0, final sparsity s_f = ``target``, t_0 = ``start_round``,
t_0 + n dt = ``end_round`` and dt = ``every_rounds``. It prunes fast early, while many
weights are redundant, and slowly near the target. No torch, no config."""

from __future__ import annotations

from dataclasses import dataclass

from greenfl.core.errors import ConfigError


@dataclass(frozen=True)
class PruneSchedule:
    """Pruning after rounds ``start_round``, ``start_round + every_rounds``, ... and
    ``end_round`` (always, even when the steps do not land on it), each to
    ``sparsity_at(round)``; after ``end_round`` the mask stays at ``target``."""

    target: float
    start_round: int
    end_round: int
    every_rounds: int = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.target < 1.0:
            raise ConfigError(f"sparsity target must be in [0, 1), got {self.target}")
        if self.start_round < 1 or self.every_rounds < 1:
            raise ConfigError(
                f"sparsity start_round and every_rounds must be >= 1, got "
                f"{self.start_round} and {self.every_rounds}"
            )
        if self.end_round < self.start_round:
            raise ConfigError(
                f"sparsity end_round ({self.end_round}) is before start_round ({self.start_round})"
            )

    def prunes_at(self, round_idx: int) -> bool:
        """Whether the server prunes after aggregating round ``round_idx``."""
        if round_idx == self.end_round:
            return True
        since = round_idx - self.start_round
        return 0 <= since and round_idx < self.end_round and since % self.every_rounds == 0

    def sparsity_at(self, round_idx: int) -> float:
        """The share of prunable weights pruned after round ``round_idx``: the schedule's
        value at the last pruning step at or before it (0 before ``start_round``)."""
        if round_idx < self.start_round:
            return 0.0
        if round_idx >= self.end_round:
            return self.target
        step = round_idx - (round_idx - self.start_round) % self.every_rounds
        done = (step - self.start_round) / (self.end_round - self.start_round)
        return self.target * (1.0 - (1.0 - done) ** 3)
