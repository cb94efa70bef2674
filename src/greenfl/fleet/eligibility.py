"""Production eligibility (``fleet.eligibility = "production"``): a device checks in only
while idle, charging and on an unmetered network, following its class's daily schedule in
local time (greenfl.fleet.schedules), and it trains over that unmetered network: a phone
whose fleet entry is on LTE trains over its home Wi-Fi at night."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import numpy as np

from greenfl.core.errors import FleetError
from greenfl.fleet.catalog import Fleet

ELIGIBILITIES = ("any", "production")


def home_network(fleet: Fleet, entry_network: str, declared: str | None) -> str:
    """The unmetered network a device on ``entry_network`` trains over under production
    eligibility: its own when unmetered, else the entry's ``home_network``, else the
    fleet's first unmetered network."""
    own = fleet.networks[fleet.network_index(entry_network)]
    if not own.metered:
        return entry_network
    if declared is not None:
        return declared
    for n in fleet.networks:
        if not n.metered:
            return n.name
    raise FleetError(
        f"{fleet.path}: production eligibility needs an unmetered network for devices on "
        f"{entry_network!r}: mark one network metered = false, or give the entry a home_network"
    )


def production_fleet(fleet: Fleet) -> Fleet:
    """``fleet`` as production eligibility sees it: every population entry on a metered
    network moved onto its home network (same device, region and share)."""
    population = tuple(
        p.model_copy(update={"network": home_network(fleet, p.network, p.home_network)})
        for p in fleet.population
    )
    return replace(fleet, population=population)


def for_eligibility(fleet: Fleet, eligibility: str) -> Fleet:
    return production_fleet(fleet) if eligibility == "production" else fleet


def local_hours(fleet: Fleet, when_utc: datetime) -> np.ndarray:
    """Local hour of day (float, 0..24) in each region."""
    utc_h = when_utc.hour + when_utc.minute / 60 + when_utc.second / 3600
    offsets = np.array([r.utc_offset_h for r in fleet.regions])
    return (utc_h + offsets) % 24


def eligible_chance(fleet: Fleet, when_utc: datetime) -> np.ndarray:
    """``[device, region]``: the chance that such a device is eligible now, its schedule's
    value at the region's local hour."""
    hour = np.floor(local_hours(fleet, when_utc)).astype(np.int64) % 24
    table = np.array([fleet.schedule(d.schedule).hourly for d in fleet.devices])
    return table[:, hour]
