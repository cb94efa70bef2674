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
    target: tuple[str, ...]
    # The row's names and region, so a cohort's ledger columns need no lookups per client.
    device: tuple[str, ...]
    network: tuple[str, ...]
    region: tuple[str, ...]
    region_index: np.ndarray

    @classmethod
    def build(cls, fleet: Fleet) -> EntryTable:
        cols = profile_columns()
        for e in fleet.population:
            d = fleet.devices[fleet.device_index(e.device)]
            n = fleet.networks[fleet.network_index(e.network)]
            append_profile_row(cols, fleet, e, d, n, d.target(e.target))
        return cls.of(cols)

    @classmethod
    def of(cls, cols: dict[str, list[Any]]) -> EntryTable:
        """A table from the columns of ``append_profile_row``."""
        names = ("target", "device", "network", "region")
        arrays = {k: np.asarray(v, dtype=np.float64) for k, v in cols.items() if k not in names}
        arrays["region_index"] = np.asarray(cols["region_index"], dtype=np.int64)
        return cls(**{k: tuple(cols[k]) for k in names}, **arrays)

    @cached_property
    def rates(self) -> np.ndarray:
        """What the footprint model needs per row, side by side (``[row, column]``: flops
        per s, active W, s per byte up, s per byte down, radio W, network J per byte,
        embodied gCO2e per active s, tail s, tail W): a cohort's profiles are then one
        gather, not nine, and
        the per-row divisions are done once, not every round."""
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
            ]
        )

    @cached_property
    def rate_rows(self) -> list[list[float]]:
        """``rates`` as Python lists, one per row: for the accounting's loop over a cohort."""
        return self.rates.tolist()

    @cached_property
    def region_list(self) -> list[int]:
        return self.region_index.tolist()


def profile_columns() -> dict[str, list[Any]]:
    return {k: [] for k in EntryTable.__dataclass_fields__}


def append_profile_row(
    cols: dict[str, list[Any]],
    fleet: Fleet,
    entry: PopulationEntry,
    d: DeviceProfile,
    n: NetworkProfile,
    t: ExecutionTarget,
) -> None:
    """One EntryTable row: population ``entry``'s device running on target ``t`` over
    network ``n``."""
    cols["flops_per_s"].append(t.flops_per_s)
    cols["active_power_w"].append(t.active_power_w)
    cols["embodied_kg"].append(d.embodied_kg)
    cols["lifetime_years"].append(d.lifetime_years)
    cols["active_share"].append(d.active_share)
    cols["up_mbps"].append(n.up_mbps)
    cols["down_mbps"].append(n.down_mbps)
    cols["radio_power_w"].append(n.radio_power_w)
    cols["network_kwh_per_gb"].append(n.network_kwh_per_gb)
    cols["tail_s"].append(n.tail_s)
    cols["tail_power_w"].append(n.tail_power_w)
    cols["target"].append(t.name)
    cols["device"].append(d.name)
    cols["network"].append(n.name)
    cols["region"].append(entry.region)
    cols["region_index"].append(fleet.region_index(entry.region))
