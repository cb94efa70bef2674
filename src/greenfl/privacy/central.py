"""Central differential privacy: user-level DP-FedAvg as a wrapper around any strategy.

DP-FedAvg (McMahan, Ramage, Talwar, Zhang, ICLR 2018, "Learning differentially private
recurrent language models"), the fixed-denominator estimator:

    clipped_i = delta_i * min(1, C / ||delta_i||)
    mean      = (sum_i clipped_i + N(0, (z_delta C)^2 I)) / m

with C the clip norm, m = ``expected_clients`` (the denominator does not depend on how many
updates arrived, so one user changes the sum by at most C: the sensitivity is C / m) and
z_delta the noise multiplier on the update. Every user weighs 1: sample-weighted averages
would let a user with much data move the model more than C / m.

The noisy mean is a pseudo-gradient handed, as a single update, to the inner strategy
(FedAvg when None; FedAvgM or FedAdam act as server optimisers on it), which is
post-processing and costs no privacy.

Adaptive clipping (Andrew, Thakkar, McMahan, Ramaswamy, NeurIPS 2021, "Differentially private
learning with adaptive clipping"): each user also reports b_i = 1[||delta_i|| <= C], and the
server estimates the fraction of unclipped updates from a noisy, centred count

    b_bar = (sum_i (b_i - 1/2) + N(0, sigma_b^2)) / m + 1/2
    C    <- C * exp(-eta_C (b_bar - gamma))

(geometric update towards the target quantile gamma, learning rate eta_C = ``clip_lr``).
Centring makes one user move the count by at most 1/2, so the count query has noise
multiplier 2 sigma_b. Two Gaussian queries of noise multipliers z_delta and 2 sigma_b on the
same users compose like one Gaussian query of multiplier sigma with
sigma^-2 = z_delta^-2 + (2 sigma_b)^-2, so for a total ``noise_multiplier`` sigma (the one the
accountant is given) the update gets

    z_delta = (sigma^-2 - (2 sigma_b)^-2)^(-1/2)

and sigma_b = ``clip_count_stddev`` (default m / 20, the paper's recommendation) must exceed
sigma / 2. Without adaptive clipping z_delta = sigma.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from greenfl.core.messages import ClientUpdate, FitInstructions
from greenfl.strategy.base import Strategy
from greenfl.strategy.fedavg import FedAvg

_INNER = "inner."


@dataclass(frozen=True)
class DpRoundFacts:
    """What one DP aggregation did, for the engine's ledger."""

    round_idx: int
    clip_norm: float  # the clip norm this round's updates were clipped to
    next_clip_norm: float  # after the adaptive step (equal to clip_norm when fixed)
    num_updates: int
    num_clipped: int  # updates whose norm exceeded clip_norm
    noise_std: float  # per coordinate, on the averaged update
    unclipped_fraction: float | None  # the noisy b_bar of adaptive clipping, else None


def update_noise_multiplier(noise_multiplier: float, count_stddev: float) -> float:
    """z_delta = (sigma^-2 - (2 sigma_b)^-2)^(-1/2): the share of the total noise multiplier
    sigma left for the update once the clipped-count query has taken its part (Andrew et al.
    2021). sigma = 0 (no privacy) gives 0."""
    if noise_multiplier <= 0:
        return 0.0
    if 2 * count_stddev <= noise_multiplier:
        raise ValueError(
            f"clip_count_stddev {count_stddev} must exceed noise_multiplier / 2 "
            f"({noise_multiplier / 2}): the count query would use more than the whole budget "
            "(the default, expected_clients / 20, needs cohorts of more than 10 x sigma)"
        )
    return (noise_multiplier**-2 - (2 * count_stddev) ** -2) ** -0.5


def round_seed(seed: int, round_idx: int) -> int:
    """A torch.Generator seed for one round's noise: well mixed from (seed, round), so rounds
    draw independent noise and a rerun with the same seed draws the same."""
    state = np.random.SeedSequence([int(seed) & (2**63 - 1), int(round_idx)]).generate_state(
        1, np.uint64
    )
    return int(state[0]) >> 1  # < 2**63


class DPFedAvg:
    """User-level DP-FedAvg around ``inner`` (FedAvg when None). ``noise_multiplier`` is the
    total sigma of the round's Gaussian mechanism (the accountant's); ``expected_clients`` is
    the fixed denominator m (the cohort size the round asks for)."""

    name = "dp_fedavg"

    def __init__(
        self,
        inner: Strategy | None = None,
        clip_norm: float = 1.0,
        noise_multiplier: float = 1.0,
        expected_clients: int = 10,
        seed: int = 0,
        adaptive_clip: bool = False,
        target_quantile: float = 0.5,
        clip_lr: float = 0.2,
        clip_count_stddev: float | None = None,
    ) -> None:
        if clip_norm <= 0 or not math.isfinite(clip_norm):
            raise ValueError(f"clip_norm must be positive and finite, got {clip_norm}")
        if noise_multiplier < 0:
            raise ValueError(f"noise_multiplier must be >= 0, got {noise_multiplier}")
        if expected_clients < 1:
            raise ValueError(f"expected_clients must be >= 1, got {expected_clients}")
        if not 0.0 < target_quantile < 1.0:
            raise ValueError(f"target_quantile must lie in (0, 1), got {target_quantile}")
        self.inner: Strategy = inner if inner is not None else FedAvg()
        self.clip_norm = float(clip_norm)
        self.noise_multiplier = float(noise_multiplier)
        self.expected_clients = int(expected_clients)
        self.seed = int(seed)
        self.adaptive_clip = bool(adaptive_clip)
        self.target_quantile = float(target_quantile)
        self.clip_lr = float(clip_lr)
        self.clip_count_stddev = (
            self.expected_clients / 20.0 if clip_count_stddev is None else float(clip_count_stddev)
        )
        if self.adaptive_clip:
            self.update_noise_multiplier = update_noise_multiplier(
                self.noise_multiplier, self.clip_count_stddev
            )
        else:
            self.update_noise_multiplier = self.noise_multiplier
        self._round = 0  # the round whose noise is drawn next
        self._configured = False
        self.last_round: DpRoundFacts | None = None

    # ---- the Strategy protocol ------------------------------------------------------
    def configure(self, round_idx: int, base: FitInstructions) -> FitInstructions:
        self._round = int(round_idx)
        self._configured = True
        return self.inner.configure(round_idx, base)

    def aggregate(
        self, global_params: torch.Tensor, updates: Sequence[ClientUpdate]
    ) -> torch.Tensor:
        # Rounds come from configure; a caller that never configures gets consecutive rounds.
        if not self._configured:
            self._round += 1
        self._configured = False
        m = self.expected_clients
        clip = self.clip_norm
        total = torch.zeros(global_params.numel(), dtype=torch.float32)
        norms = []
        for u in updates:
            norm = float(torch.linalg.vector_norm(u.delta.to(torch.float32)))
            norms.append(norm)
            total += u.delta.to(torch.float32) * min(1.0, clip / norm if norm > 0 else 1.0)
        gen = torch.Generator().manual_seed(round_seed(self.seed, self._round))
        noise_std = self.update_noise_multiplier * clip / m
        if noise_std > 0:
            # the noise of the sum (z C) divided by m: drawn once, on the mean
            total /= m
            total += torch.randn(total.shape, generator=gen, dtype=torch.float32) * noise_std
            mean = total
        else:
            mean = total / m
        num_unclipped = sum(1 for n in norms if n <= clip)
        fraction = None
        next_clip = clip
        if self.adaptive_clip:
            # drawn after the update's noise, from the same generator: one stream per round
            count_noise = (
                float(torch.randn((), generator=gen, dtype=torch.float64)) * self.clip_count_stddev
                if self.clip_count_stddev > 0
                else 0.0
            )
            fraction = (num_unclipped - len(norms) / 2 + count_noise) / m + 0.5
            next_clip = clip * math.exp(-self.clip_lr * (fraction - self.target_quantile))
            self.clip_norm = next_clip
        self.last_round = DpRoundFacts(
            round_idx=self._round,
            clip_norm=clip,
            next_clip_norm=next_clip,
            num_updates=len(norms),
            num_clipped=len(norms) - num_unclipped,
            noise_std=noise_std,
            unclipped_fraction=fraction,
        )
        pseudo = ClientUpdate(client_id=-1, delta=mean, num_samples=1)
        return self.inner.aggregate(global_params, [pseudo])

    def aggregation_flops(self, num_updates: int, num_params: int) -> int:
        """Per update: its norm (square and add per coordinate), the scale and the add into
        the sum (4 per coordinate) and one comparison with the clip; then the division by
        m, the noise draw and its add (3 per coordinate); then the inner strategy on the
        single noisy mean."""
        own = 4 * num_updates * num_params + num_updates + 3 * num_params
        return own + self.inner.aggregation_flops(1, num_params)

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {
            "clip_norm": torch.tensor(self.clip_norm, dtype=torch.float64),
            "round": torch.tensor(self._round, dtype=torch.int64),
        }
        state.update({_INNER + k: v for k, v in self.inner.state_dict().items()})
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if "clip_norm" in state:
            self.clip_norm = float(state["clip_norm"].item())
        if "round" in state:
            self._round = int(state["round"].item())
        self._configured = False
        inner = {k[len(_INNER) :]: v for k, v in state.items() if k.startswith(_INNER)}
        self.inner.load_state_dict(inner)
