"""Aggregation by clipping: centered clipping (Karimireddy, He and Jaggi, "Learning from
History for Byzantine Robust Optimization", ICML 2021) and norm clipping with optional
Gaussian noise (Sun et al., 2019, "Can You Really Backdoor Federated Learning?").

Both are unweighted by design: a client's pull on the aggregate is bounded by the clip,
and sample weights would let a liar claim many samples to enlarge that bound."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from greenfl.core.errors import ConfigError
from greenfl.core.messages import ClientUpdate, FitInstructions
from greenfl.strategy.tolerance import RobustStrategy, checked_byzantine, require

# Mixes the constructor seed with the round into one generator seed (a large odd
# multiplier keeps (seed, round) pairs apart), below 2**63 as manual_seed wants.
_SEED_MIX = 0x9E3779B97F4A7C15
_SEED_MOD = 2**63


def _positive(name: str, key: str, value: float) -> float:
    require(name, value > 0, f"{key} must be > 0, not {value}")
    return float(value)


def _norms(rows: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(rows, dim=1)


class CenteredClip(RobustStrategy):
    """Centered clipping: starting from the previous round's aggregate delta v (zero in the
    first round), ``num_iterations`` times

        v = v + mean_i( (x_i - v) * min(1, clip_radius / |x_i - v|) )

    so no update pulls v by more than clip_radius / n per iteration. The centre is kept in
    ``state_dict`` (key ``centre``), so a resumed run continues exactly; a round skipped
    for too few updates leaves it unchanged.

    Tolerance: the paper proves the guarantee for a Byzantine fraction delta <= 0.1, so
    ``max_byzantine(n) = n // 10``; with fewer attackers than that the rule is honoured.

    FLOPs: per iteration the differences (np), their norms (2np + n square roots), the
    scale factors (2n), the scaling (np), their mean (np) and the step (p):
    L (5np + 3n + p), then the add to the model (p)."""

    name = "centered_clip"
    bounds_each_update = True

    def __init__(
        self, clip_radius: float = 1.0, num_iterations: int = 3, num_byzantine: int = 0
    ) -> None:
        self.clip_radius = _positive(self.name, "clip_radius", clip_radius)
        require(
            self.name, num_iterations >= 1, f"num_iterations must be >= 1, not {num_iterations}"
        )
        self.num_iterations = num_iterations
        self.num_byzantine = checked_byzantine(self.name, num_byzantine)
        self.centre: torch.Tensor | None = None

    def max_byzantine(self, num_updates: int) -> int:
        return num_updates // 10 if num_updates >= 1 else -1

    def _aggregate_delta(
        self, global_params: torch.Tensor, updates: Sequence[ClientUpdate]
    ) -> torch.Tensor:
        stacked = torch.stack([u.delta for u in updates])
        v = torch.zeros_like(stacked[0]) if self.centre is None else self.centre.clone()
        for _ in range(self.num_iterations):
            diff = stacked - v
            # a zero difference divides to inf, and min(1, inf) leaves it as it is
            scale = (self.clip_radius / _norms(diff)).clamp(max=1.0)
            v = v + (diff * scale[:, None]).mean(dim=0)
        self.centre = v.clone()
        return v

    def _flops(self, num_updates: int, num_params: int) -> int:
        n, p = num_updates, num_params
        return self.num_iterations * (5 * n * p + 3 * n + p) + p

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {} if self.centre is None else {"centre": self.centre}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.centre = state.get("centre")


class NormClip(RobustStrategy):
    """Norm clipping: each delta scaled down to an L2 norm of at most ``clip_norm``, then
    the unweighted mean, plus Gaussian noise of standard deviation ``noise_std`` (absolute,
    per coordinate) when it is above zero, the "weak differential privacy" defence.

    The noise comes from a torch.Generator seeded from ``seed`` and the round (from
    ``configure``; without it, the count of aggregations), and that round counter is kept
    in ``state_dict``, so a run and its resume draw the same noise.

    Tolerance: none in the strict sense (``max_byzantine(n) = 0``): clipping bounds what
    an attacker can do, not where the mean ends up. What it offers: each update moves the
    aggregate by at most clip_norm / n in L2, so f attackers move it at most
    f clip_norm / n from the honest updates' clipped mean, and a model-replacement
    (boosted) backdoor loses its boost. A ``num_byzantine`` above 0 is refused.

    FLOPs: the norms (2np + n square roots), the scale factors (2n), the scaling (np), the
    mean (np) and the add to the model (p): 4np + 3n + p; with noise, 3p more (a draw
    counted as one operation, the scaling and the add)."""

    name = "clip"
    bounds_each_update = True

    def __init__(
        self,
        clip_norm: float = 1.0,
        noise_std: float = 0.0,
        seed: int = 0,
        num_byzantine: int = 0,
    ) -> None:
        self.clip_norm = _positive(self.name, "clip_norm", clip_norm)
        require(self.name, noise_std >= 0, f"noise_std must be >= 0, not {noise_std}")
        self.noise_std = float(noise_std)
        self.seed = int(seed)
        if checked_byzantine(self.name, num_byzantine) > 0:
            raise ConfigError(
                f"strategy 'clip' cannot tolerate f={num_byzantine} Byzantine updates among "
                f"any number of clients per round (it only bounds each update's pull to "
                f"clip_norm / n): choose krum, multikrum, bulyan, median, trimmed_mean, "
                f"geomedian or centered_clip"
            )
        self.num_byzantine = 0
        self.next_round = 0

    def max_byzantine(self, num_updates: int) -> int:
        return 0 if num_updates >= 1 else -1

    def configure(self, round_idx: int, base: FitInstructions) -> FitInstructions:
        self.next_round = round_idx
        return base

    def noise(self, round_idx: int, num_params: int) -> torch.Tensor:
        """The round's noise vector (float32): the same for the same seed and round."""
        gen = torch.Generator().manual_seed((self.seed * _SEED_MIX + round_idx) % _SEED_MOD)
        return torch.randn(num_params, generator=gen, dtype=torch.float32) * self.noise_std

    def _aggregate_delta(
        self, global_params: torch.Tensor, updates: Sequence[ClientUpdate]
    ) -> torch.Tensor:
        stacked = torch.stack([u.delta for u in updates])
        scale = (self.clip_norm / _norms(stacked)).clamp(max=1.0)
        delta = (stacked * scale[:, None]).mean(dim=0)
        round_idx, self.next_round = self.next_round, self.next_round + 1
        if self.noise_std > 0:
            delta = delta + self.noise(round_idx, delta.numel()).to(delta.device)
        return delta

    def _flops(self, num_updates: int, num_params: int) -> int:
        n, p = num_updates, num_params
        noise = 3 * p if self.noise_std > 0 else 0
        return 4 * n * p + 3 * n + p + noise

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"next_round": torch.tensor(self.next_round, dtype=torch.int64)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if "next_round" in state:
            self.next_round = int(state["next_round"])
