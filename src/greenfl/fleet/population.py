"""The client population in columns: one small integer array per attribute, so a million
clients cost a few megabytes and no Python object per client."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from greenfl.fleet.catalog import Fleet
from greenfl.fleet.eligibility import eligible_chance, local_hours

_ASSIGN_STREAM = 7


@dataclass(frozen=True)
class Population:
    fleet: Fleet
    entry: np.ndarray  # int32 index into fleet.population, per client
    device: np.ndarray  # int16 index into fleet.devices
    network: np.ndarray  # int16 index into fleet.networks
    region: np.ndarray  # int16 index into fleet.regions
    num_samples: np.ndarray  # int64 samples per client
    # True where a client's count is its own claim (a deployed client's --data-dir), not a
    # partition the server made: selection clips claims to its peers' range (issue 29)
    samples_claimed: np.ndarray | None = None

    @property
    def size(self) -> int:
        return len(self.entry)

    @classmethod
    def assign(cls, fleet: Fleet, num_samples: np.ndarray, seed: int) -> Population:
        """Assign each client one population entry, in proportion to the shares."""
        shares = np.array([p.share for p in fleet.population], dtype=np.float64)
        rng = np.random.default_rng([seed, _ASSIGN_STREAM])
        n = len(num_samples)
        entry = rng.choice(len(shares), size=n, p=shares / shares.sum()).astype(np.int32)
        dev = np.array([fleet.device_index(p.device) for p in fleet.population], np.int16)
        net = np.array([fleet.network_index(p.network) for p in fleet.population], np.int16)
        reg = np.array([fleet.region_index(p.region) for p in fleet.population], np.int16)
        return cls(
            fleet=fleet,
            entry=entry,
            device=dev[entry],
            network=net[entry],
            region=reg[entry],
            num_samples=np.asarray(num_samples, dtype=np.int64),
            samples_claimed=np.zeros(n, dtype=bool),
        )

    def names(self, client_id: int) -> tuple[str, str, str]:
        f = self.fleet
        return (
            f.devices[self.device[client_id]].name,
            f.networks[self.network[client_id]].name,
            f.regions[self.region[client_id]].name,
        )


def local_hour(fleet: Fleet, when_utc: datetime) -> np.ndarray:
    """Local hour of day (float, 0..24) in each region."""
    return local_hours(fleet, when_utc)


def diurnal_availability(hour_local: np.ndarray) -> np.ndarray:
    """Chance that a device is idle, charging and on unmetered network at a local hour:
    highest around 03:00 (overnight charging), lowest mid-afternoon. A smooth stand-in for
    the diurnal traces of Yang et al. (WWW 2021) with the same night-heavy shape."""
    return 0.15 + 0.7 * (1 + np.cos(2 * np.pi * (hour_local - 3.0) / 24)) / 2


def available(
    pop: Population, when_utc: datetime, mode: str, rng: np.random.Generator
) -> np.ndarray:
    """Indices of clients available now: everyone (``always``), by the region's hour of
    day (``diurnal``), or by each device's eligibility schedule (``production``)."""
    if mode == "always":
        return np.arange(pop.size, dtype=np.int64)
    if mode == "production":
        chance = eligible_chance(pop.fleet, when_utc)[pop.device, pop.region]
        return np.flatnonzero(rng.random(pop.size) < chance)
    p_region = diurnal_availability(local_hour(pop.fleet, when_utc))
    return np.flatnonzero(rng.random(pop.size) < p_region[pop.region])
