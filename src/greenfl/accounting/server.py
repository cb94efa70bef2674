"""The server's share of a round: its active work from the round's close at its region's
intensity, and, for a dedicated server, its standby while the round waited and while the
clients trained (a shared server is charged nothing for waiting)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from greenfl.core.units import J_PER_KWH
from greenfl.fleet.catalog import Fleet
from greenfl.footprint.intensity import CarbonIntensity, RegionalIntensity
from greenfl.footprint.measurement import Measurement
from greenfl.footprint.model import operational_carbon_g, server_energy_j


class ServerCost(NamedTuple):
    """The server's share of a round: its active seconds, the intensity over them, and
    its energy and carbon (active plus the idle wait before the round)."""

    server_s: float
    ci_g_per_kwh: float
    energy_j: float
    carbon_g: float
    end_s: float
    idle_j: float = 0.0  # of energy_j: standby (dedicated server) before and during it


def idle_server(
    fleet: Fleet, source: CarbonIntensity, t0_s: float, wait_s: float
) -> tuple[float, float]:
    """(energy_j, carbon_g) of the server standing by from t0 for wait_s: its idle power x
    PUE if dedicated; a shared server is charged nothing for waiting."""
    srv = fleet.server
    if wait_s <= 0 or srv.standby_w == 0:
        return 0.0, 0.0
    energy_j = srv.standby_w * wait_s * srv.pue
    ci = float(source.mean(np.array([t0_s]), np.array([t0_s + wait_s]))[0])
    return energy_j, energy_j / J_PER_KWH * ci


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
