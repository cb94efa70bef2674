"""FedProx (Li et al., 2020): FedAvg aggregation; clients add (mu/2)||w - w_global||^2."""

from __future__ import annotations

from pydantic import Field

from greenfl.core.messages import FitInstructions
from greenfl.core.registry import params
from greenfl.strategy.fedavg import FedAvg


@params
class FedProxParams:
    mu: float = Field(0.01, ge=0, le=1e6, description="weight of the proximal term")


class FedProx(FedAvg):
    name = "fedprox"
    Params = FedProxParams

    def __init__(self, params: FedProxParams | None = None) -> None:
        self.mu = (params or FedProxParams()).mu

    def configure(self, round_idx: int, base: FitInstructions) -> FitInstructions:
        return base.with_(prox_mu=self.mu)
