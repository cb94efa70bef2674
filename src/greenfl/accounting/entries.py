"""The fleet's numbers per population entry (device + execution target + network + region),
so a client's profile is one integer lookup."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from greenfl.fleet.catalog import Fleet
from greenfl.fleet.profiles import DeviceProfile, ExecutionTarget, NetworkProfile, PopulationEntry
from greenfl.footprint.model import (
    ClientCost,
    client_cost,
    embodied_carbon_g,
    network_j_per_byte,
    s_per_byte,
)


@dataclass(frozen=True)
class EntryTable:
    """The fleet's numbers per population entry (device + target + network + region), so a
    client's profile is one integer lookup."""

    flops_per_s: np.ndarray
    active_power_w: np.ndarray
    embodied_kg: np.ndarray
    lifetime_years: np.ndarray
    active_share: np.ndarray
    up_mbps: np.ndarray
    down_mbps: np.ndarray
    radio_power_w: np.ndarray
    network_kwh_per_gb: np.ndarray
    tail_s: np.ndarray
    tail_power_w: np.ndarray
    setup_s: np.ndarray
    rtt_s: np.ndarray
    charging_efficiency: np.ndarray
    access_share: np.ndarray
    target: tuple[str, ...]
    # The arithmetic precision the row's device trains in (fp32, bf16, fp16): its rates
    # above are that precision's (``FootprintChoices.precision``).
    precision: tuple[str, ...]
    # The row's names and region, so a cohort's ledger columns need no lookups per client.
    device: tuple[str, ...]
    network: tuple[str, ...]
    region: tuple[str, ...]
    region_index: np.ndarray
    server_region: int = 0  # the server's region (index): where the core network's share is

    @classmethod
    def build(cls, fleet: Fleet, choices: FootprintChoices | None = None) -> EntryTable:
        cols = profile_columns()
        for e in fleet.population:
            d = fleet.devices[fleet.device_index(e.device)]
            n = fleet.networks[fleet.network_index(e.network)]
            append_profile_row(cols, fleet, e, d, n, d.target(e.target), choices)
        return cls.of(cols, fleet.region_index(fleet.server.region))

    @classmethod
    def of(cls, cols: dict[str, list[Any]], server_region: int = 0) -> EntryTable:
        """A table from the columns of ``append_profile_row``."""
        names = ("target", "precision", "device", "network", "region")
        arrays = {k: np.asarray(v, dtype=np.float64) for k, v in cols.items() if k not in names}
        arrays["region_index"] = np.asarray(cols["region_index"], dtype=np.int64)
        return cls(**{k: tuple(cols[k]) for k in names}, **arrays, server_region=server_region)

    def cost(
        self,
        rows: np.ndarray | int,
        flops: np.ndarray | np.floating | float,
        bytes_up: np.ndarray | int,
        bytes_down: np.ndarray | int,
    ) -> ClientCost:
        """The footprint model's cost (``client_cost``) of ``flops`` and the bytes each way
        on the profiles at ``rows``: the one place that reads a profile's rates for it."""
        return client_cost(
            flops,
            bytes_up,
            bytes_down,
            self.flops_per_s[rows],
            self.active_power_w[rows],
            self.up_mbps[rows],
            self.down_mbps[rows],
            self.radio_power_w[rows],
            self.network_kwh_per_gb[rows],
            self.tail_s[rows],
            self.tail_power_w[rows],
            self.setup_s[rows],
            self.rtt_s[rows],
        )

    @cached_property
    def rates(self) -> np.ndarray:
        """What the footprint model needs per row, side by side (``[row, column]``, in the
        order of ``RATES``): a cohort's profiles are then one gather, not thirteen, and the
        per-row divisions are done once, not every round."""
        return np.column_stack(
            [
                self.flops_per_s,
                self.active_power_w,
                s_per_byte(self.up_mbps),
                s_per_byte(self.down_mbps),
                self.radio_power_w,
                network_j_per_byte(self.network_kwh_per_gb),
                embodied_carbon_g(1.0, self.embodied_kg, self.lifetime_years, self.active_share),
                self.tail_s,
                self.tail_power_w,
                self.setup_s,
                self.rtt_s,
                1.0 / self.charging_efficiency,
                self.access_share,
            ]
        )

    @cached_property
    def rate_rows(self) -> list[list[float]]:
        """``rates`` as Python lists, one per row: for the accounting's loop over a cohort."""
        return self.rates.tolist()

    @cached_property
    def region_list(self) -> list[int]:
        return self.region_index.tolist()


# The columns of EntryTable.rates, in order.
RATES = (
    "flops_per_s",
    "active_power_w",
    "up_s_per_byte",
    "down_s_per_byte",
    "radio_power_w",
    "network_j_per_byte",
    "embodied_g_per_active_s",
    "tail_s",
    "tail_power_w",
    "setup_s",
    "rtt_s",
    "wall_per_device_j",
    "access_share",
)


@dataclass(frozen=True)
class FootprintChoices:
    """The footprint model's documented choices (``fleet.network_energy`` and
    ``fleet.embodied_allocation``), and the precision clients train in
    (``train.precision``), whose rates a row carries."""

    network_energy: str = "average"  # average | marginal
    embodied_allocation: str = "active"  # active | lifetime
    precision: str = "fp32"  # fp32 | bf16 | fp16 | auto (the target's least-energy one)


def profile_columns() -> dict[str, list[Any]]:
    return {k: [] for k in EntryTable.__dataclass_fields__ if k != "server_region"}


def append_profile_row(
    cols: dict[str, list[Any]],
    fleet: Fleet,
    entry: PopulationEntry,
    d: DeviceProfile,
    n: NetworkProfile,
    t: ExecutionTarget,
    choices: FootprintChoices | None = None,
) -> None:
    """One EntryTable row: population ``entry``'s device running on target ``t`` over
    network ``n``, under the footprint model's ``choices``."""
    c = choices if choices is not None else FootprintChoices()
    # The precision asked, where the target declares it (else fp32, its own rates): the
    # same FLOPs at that precision's throughput and power.
    p = t.precision(c.precision)
    cols["flops_per_s"].append(t.flops_per_s if p is None else p.flops_per_s)
    cols["active_power_w"].append(t.active_power_w if p is None else p.active_power_w)
    cols["precision"].append("fp32" if p is None else p.name)
    cols["embodied_kg"].append(d.embodied_kg)
    cols["lifetime_years"].append(d.lifetime_years)
    # The lifetime allocation charges a second of use 1/(lifetime) of the device, not
    # 1/(lifetime x share of it in use).
    cols["active_share"].append(1.0 if c.embodied_allocation == "lifetime" else d.active_share)
    cols["up_mbps"].append(n.up_mbps)
    cols["down_mbps"].append(n.down_mbps)
    cols["radio_power_w"].append(n.radio_power_w)
    cols["network_kwh_per_gb"].append(n.kwh_per_gb(c.network_energy))
    cols["tail_s"].append(n.tail_s)
    cols["tail_power_w"].append(n.tail_power_w)
    cols["setup_s"].append(n.setup_s)
    cols["rtt_s"].append(n.rtt_ms / 1000)
    cols["charging_efficiency"].append(d.charging_efficiency)
    cols["access_share"].append(n.access_share)
    cols["target"].append(t.name)
    cols["device"].append(d.name)
    cols["network"].append(n.name)
    cols["region"].append(entry.region)
    cols["region_index"].append(fleet.region_index(entry.region))
