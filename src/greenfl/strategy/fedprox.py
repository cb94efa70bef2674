"""FedProx (Li et al., 2020): FedAvg aggregation; clients add (mu/2)||w - w_global||^2."""

from __future__ import annotations

from greenfl.core.messages import FitInstructions
from greenfl.strategy.fedavg import FedAvg


class FedProx(FedAvg):
    name = "fedprox"

    def __init__(self, mu: float = 0.01) -> None:
        self.mu = mu

    def configure(self, round_idx: int, base: FitInstructions) -> FitInstructions:
        return base.with_(prox_mu=self.mu)
