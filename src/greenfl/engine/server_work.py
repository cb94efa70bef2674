"""The server's counted work per round, from which simulation models its time: the
strategy's aggregation FLOPs plus a forward pass over the central test set, at the server's
``flops_per_s``. Counted work makes the footprint repeatable: the same config and seed give
the same server seconds on any host, under any load. (Host-measured time is used where it
is real: in deployment, or with ``engine.server_meter = "measured"``.)"""

from __future__ import annotations

from dataclasses import dataclass

from greenfl.footprint.measurement import Measurement
from greenfl.strategy.base import Strategy


@dataclass(frozen=True)
class ServerWorkModel:
    num_params: int
    eval_flops: float  # forward FLOPs per sample x central test samples
    flops_per_s: float

    def round_flops(self, strategy: Strategy, num_updates: int) -> float:
        agg = strategy.aggregation_flops(num_updates, self.num_params) if num_updates else 0
        return float(agg) + self.eval_flops

    def measurement(self, strategy: Strategy, num_updates: int) -> tuple[Measurement, float]:
        """(the modelled window, as a meter would report it, and its FLOPs)."""
        flops = self.round_flops(strategy, num_updates)
        return Measurement(elapsed_s=flops / self.flops_per_s, energy_j=None), flops
