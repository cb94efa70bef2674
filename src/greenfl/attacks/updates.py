"""Attacks on the update a malicious client sends (its delta: local minus global params).

- sign_flip: ``-scale x delta``: the honest direction reversed.
- scaling: ``scale x delta``, model replacement (Bagdasaryan et al., AISTATS 2020): boosted
  by about the cohort size, one update outweighs the rest of a mean.
- noise: a Gaussian vector of std ``scale`` in place of the update.
- alie: "a little is enough" (Baruch et al., NeurIPS 2019): every attacker sends
  ``mean - z x std`` of the honest updates, coordinate-wise: a shift small enough to pass
  norm and distance checks, large enough, summed over rounds, to derail training.
- backdoor: the update of a model trained on poisoned data, boosted by ``scale``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist

import torch


def alie_z(num_updates: int, num_attackers: int) -> float:
    """Baruch et al.'s z: with s = floor(n/2 + 1) - m honest updates the attackers need on
    their side for a majority, z = Phi^-1((n - s) / n); 0 when no shift is possible."""
    s = math.floor(num_updates / 2 + 1) - num_attackers
    share = (num_updates - s) / num_updates
    if share <= 0 or share >= 1:
        return 0.0
    return max(NormalDist().inv_cdf(share), 0.0)


@dataclass(frozen=True)
class UpdateAttack:
    """What malicious clients do to their updates. ``scale`` follows ``attack.scale``
    (see AttackConfig); ``seed`` makes the noise attack repeatable."""

    name: str
    scale: float
    seed: int
    z: float | None = None  # alie: None derives Baruch et al.'s z for each round

    def apply(
        self,
        round_idx: int,
        malicious: Mapping[int, torch.Tensor],
        honest: Mapping[int, torch.Tensor],
    ) -> dict[int, torch.Tensor]:
        """The deltas the malicious clients send instead of their honestly trained ones
        (``malicious``), given the round's other updates (``honest``)."""
        if not malicious:
            return {}
        if self.name == "sign_flip":
            return {cid: -self.scale * d for cid, d in malicious.items()}
        if self.name in ("scaling", "backdoor"):
            return {cid: self.scale * d for cid, d in malicious.items()}
        if self.name == "noise":
            return {cid: self._noise(round_idx, cid, d) for cid, d in malicious.items()}
        if self.name == "alie":
            shifted = self._alie(malicious, honest)
            return {cid: shifted.clone() for cid in malicious}
        if self.name == "label_flip":  # a data attack: the update is sent as trained
            return dict(malicious)
        raise ValueError(f"unknown update attack {self.name!r}")

    def _noise(self, round_idx: int, client_id: int, like: torch.Tensor) -> torch.Tensor:
        gen = torch.Generator().manual_seed(
            (self.seed * 1_000_003 + round_idx * 10_007 + client_id) % 2**63
        )
        return torch.randn(like.shape, generator=gen, dtype=like.dtype) * self.scale

    def _alie(
        self, malicious: Mapping[int, torch.Tensor], honest: Mapping[int, torch.Tensor]
    ) -> torch.Tensor:
        # The attackers estimate the honest updates' spread from their own honestly
        # trained ones, as in the paper; a lone attacker has no spread of its own and
        # reads the round's other updates instead (an omniscient attacker: stronger).
        own = list(malicious.values())
        sample = own if len(own) >= 2 else own + list(honest.values())
        stacked = torch.stack(sample)
        mean, std = stacked.mean(dim=0), stacked.std(dim=0, unbiased=False)
        n = len(malicious) + len(honest)
        z = self.z if self.z is not None else alie_z(n, len(malicious))
        return mean - z * std
