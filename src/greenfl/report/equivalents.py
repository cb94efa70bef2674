"""Everyday equivalents of a run's energy and carbon, each with the figure it rests on and
that figure's source, so a reader can check the conversion.

Carbon equivalents divide gCO2e by an emission factor; energy equivalents divide kWh by the
energy of one everyday act. Energy-based ones need no assumption about the grid."""

from __future__ import annotations

from dataclasses import dataclass

from greenfl.core.units import J_PER_KWH

# --- emission factors (gCO2e per unit) ------------------------------------------------
M_PER_MILE = 1609.344
CAR_US_G_PER_MILE = 400.0
CAR_US_G_PER_KM = CAR_US_G_PER_MILE / (M_PER_MILE / 1000)  # 248.5 g/km
CAR_US_SOURCE = (
    "US EPA, 'Greenhouse Gas Emissions from a Typical Passenger Vehicle' (2023): "
    "about 400 gCO2 per mile (248.5 g/km), tailpipe"
)
CAR_EU_NEW_G_PER_KM = 107.0
CAR_EU_NEW_SOURCE = (
    "EEA, CO2 emissions from new passenger cars in the EU, 2023 (provisional): "
    "about 107 gCO2/km (WLTP, fleet average of new registrations, tailpipe)"
)

# --- energy per everyday act (kWh per unit) -------------------------------------------
PHONE_CHARGE_KWH = 0.012
PHONE_CHARGE_SOURCE = (
    "US EPA Greenhouse Gas Equivalencies Calculator, calculations and references: "
    "about 0.012 kWh to charge a smartphone fully (editions differ slightly)"
)
WATER_J_PER_KG_K = 4186.0
KETTLE_LITRES = 1.0
KETTLE_DELTA_K = 80.0  # 20 C tap water to boiling
KETTLE_EFFICIENCY = 0.9
KETTLE_KWH = WATER_J_PER_KG_K * KETTLE_LITRES * KETTLE_DELTA_K / KETTLE_EFFICIENCY / J_PER_KWH
KETTLE_SOURCE = (
    "physics: 1 L of water heated 80 K at 4,186 J/(kg K), kettle 90% efficient "
    f"= {KETTLE_KWH:.3f} kWh per boil"
)
LED_W = 10.0
LED_SOURCE = "definition: a 10 W LED bulb uses 0.01 kWh per hour"


@dataclass(frozen=True)
class Equivalent:
    key: str
    label: str  # e.g. "driven by an average US car"
    value: float
    unit: str  # e.g. "km", "charges"
    basis: str  # "carbon" or "energy"
    source: str


def car_distance_km(carbon_g: float, g_per_km: float = CAR_US_G_PER_KM) -> float:
    return carbon_g / g_per_km


def phone_charges(energy_j: float) -> float:
    return energy_j / J_PER_KWH / PHONE_CHARGE_KWH


def kettle_boils(energy_j: float) -> float:
    return energy_j / J_PER_KWH / KETTLE_KWH


def led_hours(energy_j: float) -> float:
    return energy_j / J_PER_KWH / (LED_W / 1000)


def equivalents(carbon_g: float, energy_j: float) -> list[Equivalent]:
    """The run's total carbon and energy in everyday terms."""
    return [
        Equivalent(
            "car_us_km",
            "driven by an average US passenger car",
            car_distance_km(carbon_g),
            "km",
            "carbon",
            CAR_US_SOURCE,
        ),
        Equivalent(
            "car_eu_new_km",
            "driven by an average new EU car",
            car_distance_km(carbon_g, CAR_EU_NEW_G_PER_KM),
            "km",
            "carbon",
            CAR_EU_NEW_SOURCE,
        ),
        Equivalent(
            "phone_charges",
            "full smartphone charges",
            phone_charges(energy_j),
            "charges",
            "energy",
            PHONE_CHARGE_SOURCE,
        ),
        Equivalent(
            "kettle_boils",
            "boils of a 1 L kettle",
            kettle_boils(energy_j),
            "boils",
            "energy",
            KETTLE_SOURCE,
        ),
        Equivalent(
            "led_hours", "hours of a 10 W LED bulb", led_hours(energy_j), "h", "energy", LED_SOURCE
        ),
    ]


def humanize_distance_km(km: float) -> tuple[float, str]:
    """A distance in the unit that reads best: mm, m or km."""
    if km >= 1:
        return km, "km"
    if km * 1000 >= 1:
        return km * 1000, "m"
    return km * 1e6, "mm"
