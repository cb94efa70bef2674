"""The server's counted work per round, from which simulation models its time: the
strategy's aggregation FLOPs plus a forward pass over the central test set, at the server's
``flops_per_s``. Counted work makes the footprint repeatable: the same config and seed give
the same server seconds on any host, under any load. (Host-measured time is used where it
is real: in deployment, or with ``engine.server_meter = "measured"``.)"""

from __future__ import annotations

from dataclasses import dataclass

from greenfl.engine.planning import idle_server
from greenfl.engine.records import ServerCost
from greenfl.fleet.catalog import Fleet
from greenfl.footprint.intensity import RegionalIntensity
from greenfl.footprint.measurement import Measurement
from greenfl.footprint.model import operational_carbon_g, server_energy_j
from greenfl.strategy.base import Strategy

# (accuracy, loss, the server's window, its counted FLOPs: 0 when measured)
Evaluated = tuple[float, float, Measurement, float]


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


def server_cost(
    fleet: Fleet,
    sources: RegionalIntensity,
    server_region: int,
    start_s: float,
    close_s: float,
    measured: Measurement,
    idle_j: float,
    idle_g: float,
) -> ServerCost:
    """The server's footprint of a round: its active work from the round's close
    (``start_s + close_s``) at its region's intensity, plus, for a dedicated server, its
    standby while it waited before the round (``idle_j``, ``idle_g``) and while the
    clients trained."""
    srv = fleet.server
    server_s = measured.elapsed_s
    at_s = start_s + close_s
    ci = float(sources.mean(server_region, at_s, at_s + server_s))
    active_j = server_energy_j(
        server_s, srv.power_w, srv.pue, measured.energy_j, srv.idle_power_w, srv.mode
    )
    active_g = float(operational_carbon_g(active_j, ci))
    phase_j, phase_g = idle_server(fleet, sources[server_region], start_s, close_s)
    idle_j, idle_g = idle_j + phase_j, idle_g + phase_g
    return ServerCost(server_s, ci, active_j + idle_j, active_g + idle_g, at_s + server_s, idle_j)
