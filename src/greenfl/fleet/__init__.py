"""The device fleet: profiles with sources, the columnar population, availability."""

from greenfl.fleet.catalog import BUILTIN, Fleet, load_fleet, parse_fleet
from greenfl.fleet.population import Population, available, diurnal_availability, local_hour
from greenfl.fleet.profiles import (
    DeviceProfile,
    ExecutionTarget,
    NetworkProfile,
    PopulationEntry,
    PrecisionTarget,
    Region,
    ServerProfile,
)

__all__ = [
    "BUILTIN",
    "DeviceProfile",
    "ExecutionTarget",
    "Fleet",
    "NetworkProfile",
    "Population",
    "PopulationEntry",
    "PrecisionTarget",
    "Region",
    "ServerProfile",
    "available",
    "diurnal_availability",
    "load_fleet",
    "local_hour",
    "parse_fleet",
]
