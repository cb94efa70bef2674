"""Aggregation by clipping: centered clipping (Karimireddy, He and Jaggi, "Learning from
History for Byzantine Robust Optimization", ICML 2021) and norm clipping with optional
Gaussian noise (Sun et al., 2019, "Can You Really Backdoor Federated Learning?").

Both are unweighted by design: a client's pull on the aggregate is bounded by the clip,
and sample weights would let a liar claim many samples to enlarge that bound."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pydantic import Field

from greenfl.core.errors import ConfigError
from greenfl.core.messages import ClientUpdate, FitInstructions
from greenfl.core.registry import params
from greenfl.strategy.tolerance import MAX_COHORT, RobustStrategy, checked_byzantine

_BOUND = 1e6

# Mixes the constructor seed with the round into one generator seed (a large odd
# multiplier keeps (seed, round) pairs apart), below 2**63 as manual_seed wants.
_SEED_MIX = 0x9E3779B97F4A7C15
_SEED_MOD = 2**63


def _norms(rows: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(rows, dim=1)


# Clipping bounds each update's pull instead of out-voting attackers: it is held to an
# explicit byzantine only, never to a simulated attack's expected count (default 0, not
# none, so the run does not fill it in).
_EXPLICIT_BYZANTINE = "Byzantine updates per round to tolerate (f), held to an explicit value only"


@params
class CenteredClipParams:
    radius: float = Field(1.0, gt=0, le=_BOUND, description="clipping radius around the centre")
    iterations: int = Field(3, ge=1, le=1000, description="clipping iterations per round")
    byzantine: int = Field(0, ge=0, le=MAX_COHORT, description=_EXPLICIT_BYZANTINE)


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
    Params = CenteredClipParams
    bounds_each_update = True

    def __init__(self, params: CenteredClipParams | None = None) -> None:
        p = params if params is not None else CenteredClipParams()
        self.clip_radius = float(p.radius)
        self.num_iterations = p.iterations
        self.num_byzantine = checked_byzantine(self.name, p.byzantine)
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


@params
class NormClipParams:
    norm: float = Field(1.0, gt=0, le=_BOUND, description="L2 bound of each update")
    noise_std: float = Field(
        0.0, ge=0, le=_BOUND, description="std of the Gaussian noise added to the mean"
    )
    seed: int | None = Field(
        None, ge=0, le=2**32 - 1, description="seeds the noise (none: the run's seed)"
    )
    byzantine: int = Field(0, ge=0, le=MAX_COHORT, description=_EXPLICIT_BYZANTINE)


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
    Params = NormClipParams
    bounds_each_update = True

    def __init__(self, params: NormClipParams | None = None) -> None:
        p = params if params is not None else NormClipParams()
        self.clip_norm = float(p.norm)
        self.noise_std = float(p.noise_std)
        self.seed = int(p.seed or 0)
        if checked_byzantine(self.name, p.byzantine) > 0:
            raise ConfigError(
                f"strategy 'clip' cannot tolerate f={p.byzantine} Byzantine updates among "
                f"any number of clients per round (it only bounds each update's pull to "
                f"norm / n): choose krum, multikrum, bulyan, median, trimmed_mean, "
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
