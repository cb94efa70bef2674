"""The footprint model of DESIGN.md, as pure functions over numpy arrays (one element per
client), so a cohort of a thousand clients is a handful of vector operations.

    compute_s            = flops / flops_per_s
    energy_compute_j     = active_power_w * compute_s
    down_s               = setup_s + rtt_s + bytes_down*8/(down_mbps*1e6)
    up_s                 = rtt_s + bytes_up*8/(up_mbps*1e6)
    comm_s               = down_s + up_s
    energy_network_j     = (bytes_up+bytes_down)/1e9 * network_kwh_per_gb * 3.6e6
    energy_comm_j        = radio_power_w * comm_s + energy_network_j
                           + tail_power_w * (min(tail_s, compute_s) + tail_s)
                             (the radio's tail, once per burst: the download and the upload
                             are one burst when training is shorter than the tail timer,
                             and the radio idles at tail power in between; else two)
    wall_energy_j        = (energy_compute_j + energy_comm_j - energy_network_j)
                           / charging_efficiency      (the device's energy at the wall)
    carbon_operational_g = (wall_energy_j + access_share * energy_network_j) / 3.6e6 * ci
                           + (1 - access_share) * energy_network_j / 3.6e6 * server_ci
    carbon_embodied_g    = embodied_kg*1000 * (compute_s+comm_s)
                           / (lifetime_years*8766*3600*active_share)
                           (active_share = 1 under the lifetime allocation)
    server_energy_j      = (measured or server_power_w * server_s) * pue
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from greenfl.core.units import (
    BITS_PER_BYTE,
    BITS_PER_MBIT,
    BYTES_PER_GB,
    G_PER_KG,
    HOURS_PER_YEAR,
    J_PER_KWH,
    S_PER_HOUR,
)

ArrayLike = np.ndarray | float


@dataclass(frozen=True)
class ClientCost:
    """Time and energy of one phase-ordered client round: download, compute, upload."""

    compute_s: np.ndarray
    down_s: np.ndarray
    up_s: np.ndarray
    energy_compute_j: np.ndarray
    energy_comm_j: np.ndarray  # the radio's (tail included) and the network's
    energy_network_j: np.ndarray | float = 0.0  # of energy_comm_j: the network's, per byte

    @cached_property
    def device_j(self) -> np.ndarray:
        """The device's own energy (compute and radio), before charging losses."""
        return self.energy_compute_j + self.energy_comm_j - self.energy_network_j

    @cached_property
    def comm_s(self) -> np.ndarray:
        return self.down_s + self.up_s

    @cached_property
    def total_s(self) -> np.ndarray:
        return self.compute_s + self.down_s + self.up_s


def s_per_byte(mbps: ArrayLike) -> np.ndarray:
    """Transfer seconds per byte on a link of ``mbps``: bytes x this = bytes*8/(mbps*1e6)."""
    return BITS_PER_BYTE / (np.asarray(mbps, dtype=np.float64) * BITS_PER_MBIT)


def network_j_per_byte(network_kwh_per_gb: ArrayLike) -> np.ndarray:
    """Network energy per byte moved: bytes x this = bytes/1e9 * kwh_per_gb * 3.6e6."""
    return np.asarray(network_kwh_per_gb, dtype=np.float64) / BYTES_PER_GB * J_PER_KWH


def transfer_time_s(num_bytes: ArrayLike, mbps: ArrayLike) -> np.ndarray:
    return np.asarray(num_bytes, dtype=np.float64) * s_per_byte(mbps)


def comm_energy_j(
    comm_s: ArrayLike, num_bytes: ArrayLike, radio_power_w: ArrayLike, network_kwh_per_gb: ArrayLike
) -> np.ndarray:
    return _comm_j(comm_s, num_bytes, radio_power_w, network_j_per_byte(network_kwh_per_gb))


def _comm_j(
    comm_s: ArrayLike, num_bytes: ArrayLike, radio_power_w: ArrayLike, net_j_per_byte: ArrayLike
) -> np.ndarray:
    """The radio's energy over the transfer time plus the network's for the bytes moved."""
    return np.asarray(radio_power_w) * comm_s + np.asarray(num_bytes) * net_j_per_byte


def client_cost(
    flops: ArrayLike,
    bytes_up: ArrayLike,
    bytes_down: ArrayLike,
    flops_per_s: ArrayLike,
    active_power_w: ArrayLike,
    up_mbps: ArrayLike,
    down_mbps: ArrayLike,
    radio_power_w: ArrayLike,
    network_kwh_per_gb: ArrayLike,
    tail_s: ArrayLike = 0.0,
    tail_power_w: ArrayLike = 0.0,
    setup_s: ArrayLike = 0.0,
    rtt_s: ArrayLike = 0.0,
) -> ClientCost:
    return cost_from_rates(
        flops,
        bytes_up,
        bytes_down,
        flops_per_s,
        active_power_w,
        s_per_byte(up_mbps),
        s_per_byte(down_mbps),
        radio_power_w,
        network_j_per_byte(network_kwh_per_gb),
        tail_s,
        tail_power_w,
        setup_s,
        rtt_s,
    )


def tail_energy_j(
    compute_s: ArrayLike,
    downloaded: ArrayLike,
    uploaded: ArrayLike,
    tail_s: ArrayLike,
    tail_power_w: ArrayLike,
) -> np.ndarray:
    """The radio's tail (Huang et al., MobiSys 2012: an LTE modem stays in its high-power
    state for a timer after each burst of transfers): after the download it lasts until
    the timer or the upload, whichever is first (a training shorter than the timer makes
    the two transfers one burst, with one tail); after the upload, the whole timer."""
    after_down = np.minimum(tail_s, compute_s) * np.asarray(downloaded)
    return np.asarray(tail_power_w) * (after_down + np.asarray(tail_s) * np.asarray(uploaded))


def cost_from_rates(
    flops: ArrayLike,
    bytes_up: ArrayLike,
    bytes_down: ArrayLike,
    flops_per_s: ArrayLike,
    active_power_w: ArrayLike,
    up_s_per_byte: ArrayLike,
    down_s_per_byte: ArrayLike,
    radio_power_w: ArrayLike,
    net_j_per_byte: ArrayLike,
    tail_s: ArrayLike = 0.0,
    tail_power_w: ArrayLike = 0.0,
    setup_s: ArrayLike = 0.0,
    rtt_s: ArrayLike = 0.0,
) -> ClientCost:
    """client_cost with each link's seconds per byte and the network's joules per byte
    computed beforehand (once per fleet entry, not once per client and round). The
    connection's set-up and a round trip come before the download, a round trip before the
    upload, with the radio on."""
    # Operators, not ufuncs with dtype=: half the cost a call on a cohort's small arrays.
    compute_s = flops / np.asarray(flops_per_s)
    downloaded, uploaded = np.asarray(bytes_down) > 0, np.asarray(bytes_up) > 0
    up_s = bytes_up * np.asarray(up_s_per_byte) + rtt_s * uploaded
    down_s = bytes_down * np.asarray(down_s_per_byte) + (setup_s + rtt_s) * downloaded
    network_j = (bytes_up + bytes_down) * np.asarray(net_j_per_byte)
    tail_j = tail_energy_j(compute_s, downloaded, uploaded, tail_s, tail_power_w)
    return ClientCost(
        compute_s=compute_s,
        down_s=down_s,
        up_s=up_s,
        energy_compute_j=active_power_w * compute_s,
        energy_comm_j=np.asarray(radio_power_w) * (up_s + down_s) + network_j + tail_j,
        energy_network_j=network_j,
    )


def truncate(
    cost: ClientCost,
    stop_after_s: np.ndarray,
    bytes_up: np.ndarray,
    bytes_down: np.ndarray,
    active_power_w: np.ndarray,
    radio_power_w: np.ndarray,
    network_kwh_per_gb: np.ndarray,
    tail_s: ArrayLike = 0.0,
    tail_power_w: ArrayLike = 0.0,
) -> tuple[ClientCost, np.ndarray, np.ndarray]:
    """The cost of work cut off after ``stop_after_s`` (a drop-out, or a straggler aborted when
    the round closes): phases run download -> compute -> upload, and each is counted up to
    the cut (a radio tail follows each transfer that finished). Returns the truncated cost
    and the bytes actually moved down and up."""
    t = np.maximum(np.asarray(stop_after_s, dtype=np.float64), 0.0)
    down_s = np.minimum(cost.down_s, t)
    compute_s = np.minimum(cost.compute_s, np.maximum(t - cost.down_s, 0.0))
    up_s = np.minimum(cost.up_s, np.maximum(t - cost.down_s - cost.compute_s, 0.0))
    frac_down = np.divide(down_s, cost.down_s, out=np.ones_like(down_s), where=cost.down_s > 0)
    frac_up = np.divide(up_s, cost.up_s, out=np.zeros_like(up_s), where=cost.up_s > 0)
    moved_down = np.asarray(bytes_down, dtype=np.float64) * frac_down
    moved_up = np.asarray(bytes_up, dtype=np.float64) * frac_up
    network_j = (moved_down + moved_up) * network_j_per_byte(network_kwh_per_gb)
    cut = ClientCost(
        compute_s=compute_s,
        down_s=down_s,
        up_s=up_s,
        energy_compute_j=np.asarray(active_power_w) * compute_s,
        energy_comm_j=np.asarray(radio_power_w) * (down_s + up_s)
        + network_j
        + tail_energy_j(
            compute_s, frac_down >= 1, (frac_up >= 1) & (cost.up_s > 0), tail_s, tail_power_w
        ),
        energy_network_j=network_j,
    )
    return cut, np.rint(moved_down).astype(np.int64), np.rint(moved_up).astype(np.int64)


def operational_carbon_g(energy_j: ArrayLike, ci_g_per_kwh: ArrayLike) -> np.ndarray:
    return np.asarray(energy_j, dtype=np.float64) / J_PER_KWH * ci_g_per_kwh


def client_operational_g(
    wall_j: ArrayLike,
    network_j: ArrayLike,
    access_share: ArrayLike,
    ci_g_per_kwh: ArrayLike,
    server_ci_g_per_kwh: ArrayLike,
) -> np.ndarray:
    """A client round's operational carbon: the device's energy at the wall and the access
    network's share of the network energy on the client's grid, the rest of the network
    energy (core, the server side) on the server's grid."""
    access_j = np.asarray(network_j) * access_share
    return operational_carbon_g(np.asarray(wall_j) + access_j, ci_g_per_kwh) + operational_carbon_g(
        np.asarray(network_j) - access_j, server_ci_g_per_kwh
    )


def embodied_carbon_g(
    active_s: ArrayLike, embodied_kg: ArrayLike, lifetime_years: ArrayLike, active_share: ArrayLike
) -> np.ndarray:
    """Manufacturing carbon charged for ``active_s`` seconds of use: the device's embodied
    carbon spread over the hours it is actively used in its lifetime (Green Algorithms)."""
    active_lifetime_s = np.asarray(lifetime_years) * HOURS_PER_YEAR * S_PER_HOUR * active_share
    return np.asarray(embodied_kg) * G_PER_KG * np.asarray(active_s) / active_lifetime_s


def server_energy_j(
    server_s: float,
    power_w: float,
    pue: float,
    measured_j: float | None,
    idle_power_w: float = 0.0,
    mode: str = "dedicated",
) -> float:
    """Facility energy of the server's active work: IT energy (measured where counters
    exist, else power x time) times the datacentre's PUE. A ``shared`` server is charged
    only the marginal part above its idle draw; a ``dedicated`` one the whole draw (its
    standby between rounds is charged apart, see ``idle_server``)."""
    it_j = measured_j if measured_j is not None else power_w * server_s
    if mode == "shared":
        it_j = max(0.0, it_j - idle_power_w * server_s)
    return it_j * pue
