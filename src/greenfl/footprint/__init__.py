"""The footprint model: client and server energy, carbon intensity, embodied carbon."""

from greenfl.footprint.intensity import CarbonIntensity, ConstantIntensity, HourlyProfile, Trace
from greenfl.footprint.measurement import Measurement, Meter
from greenfl.footprint.meters import NullMeter, RaplMeter, best_meter
from greenfl.footprint.model import (
    ClientCost,
    client_cost,
    embodied_carbon_g,
    operational_carbon_g,
    server_energy_j,
    truncate,
)

__all__ = [
    "CarbonIntensity",
    "ClientCost",
    "ConstantIntensity",
    "HourlyProfile",
    "Measurement",
    "Meter",
    "NullMeter",
    "RaplMeter",
    "Trace",
    "best_meter",
    "client_cost",
    "embodied_carbon_g",
    "operational_carbon_g",
    "server_energy_j",
    "truncate",
]
