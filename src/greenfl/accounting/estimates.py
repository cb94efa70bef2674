"""Expected time, energy and carbon of clients before they train: the footprint model
applied to what a round will ask of them (flops per sample x samples x epochs, the encoded
update size), with each region's carbon intensity forecast over the client's expected
active interval. Vectorised over the candidates, so a million costs a few array ops."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from greenfl.accounting.entries import EntryTable
from greenfl.accounting.sources import mean_intensity
from greenfl.core.messages import samples_processed
from greenfl.fleet.population import Population
from greenfl.footprint.intensity import CarbonIntensity
from greenfl.footprint.model import client_operational_g, embodied_carbon_g


@dataclass(frozen=True)
class Estimates:
    duration_s: np.ndarray
    energy_j: np.ndarray
    carbon_operational_g: np.ndarray
    carbon_embodied_g: np.ndarray

    @property
    def carbon_g(self) -> np.ndarray:
        return self.carbon_operational_g + self.carbon_embodied_g


def estimate_clients(
    clients: np.ndarray,
    rows: np.ndarray,
    population: Population,
    table: EntryTable,
    sources: Sequence[CarbonIntensity],
    start_s: float | np.ndarray,
    flops_per_sample: float | np.ndarray,
    local_epochs: int,
    bytes_up: int | np.ndarray,
    bytes_down: int | np.ndarray,
    batch_size: int = 1,
    max_steps: int = 0,
) -> Estimates:
    """``rows``: each client's row in ``table`` (its population entry, or a target row).
    The per-sample FLOPs and bytes are one for all clients or one per client.
    ``batch_size`` matters only under a step cap (``max_steps`` > 0)."""
    processed = samples_processed(
        population.num_samples[clients], local_epochs, batch_size, max_steps
    )
    flops = flops_per_sample * processed.astype(np.float64)
    cost = table.cost(rows, flops, bytes_up, bytes_down)
    duration_s = cost.total_s
    t0 = np.broadcast_to(np.asarray(start_s, dtype=np.float64), duration_s.shape)
    ci = mean_intensity(sources, population.region[clients], t0, t0 + duration_s)
    server = np.full(len(clients), table.server_region, dtype=np.int64)
    server_ci = mean_intensity(sources, server, t0, t0 + duration_s)
    energy_j = cost.energy_compute_j + cost.energy_comm_j
    wall_j = cost.device_j / table.charging_efficiency[rows]
    return Estimates(
        duration_s=duration_s,
        energy_j=energy_j,
        carbon_operational_g=client_operational_g(
            wall_j, cost.energy_network_j, table.access_share[rows], ci, server_ci
        ),
        carbon_embodied_g=embodied_carbon_g(
            duration_s,
            table.embodied_kg[rows],
            table.lifetime_years[rows],
            table.active_share[rows],
        ),
    )
