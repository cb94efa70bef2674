"""Everyday equivalents of a run's energy and carbon, each with the figure it rests on and
that figure's source, so a reader can check the conversion.

Carbon equivalents divide gCO2e by an emission factor; energy equivalents divide kWh by the
energy of one everyday act. Energy-based ones need no assumption about the grid."""

from __future__ import annotations

import math
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
    value: float  # in ``unit``
    unit: str  # "km", "charges", "boils" or "h"
    one: str  # after an amount of 1: "full smartphone charge"
    many: str  # after any other amount: "full smartphone charges"
    basis: str  # "carbon" or "energy"
    source: str
    part: str = ""  # after a percentage, for less than one: "of a full smartphone charge"


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
            car_distance_km(carbon_g),
            "km",
            "driven by an average US passenger car",
            "driven by an average US passenger car",
            "carbon",
            CAR_US_SOURCE,
        ),
        Equivalent(
            "car_eu_new_km",
            car_distance_km(carbon_g, CAR_EU_NEW_G_PER_KM),
            "km",
            "driven by an average new EU car",
            "driven by an average new EU car",
            "carbon",
            CAR_EU_NEW_SOURCE,
        ),
        Equivalent(
            "phone_charges",
            phone_charges(energy_j),
            "charges",
            "full smartphone charge",
            "full smartphone charges",
            "energy",
            PHONE_CHARGE_SOURCE,
            "of a full smartphone charge",
        ),
        Equivalent(
            "kettle_boils",
            kettle_boils(energy_j),
            "boils",
            "boil of a 1 L kettle",
            "boils of a 1 L kettle",
            "energy",
            KETTLE_SOURCE,
            "of the energy to boil a 1 L kettle",
        ),
        Equivalent(
            "led_hours",
            led_hours(energy_j),
            "h",
            "of light from a 10 W LED bulb",
            "of light from a 10 W LED bulb",
            "energy",
            LED_SOURCE,
        ),
    ]


def humanize_distance_km(km: float) -> tuple[float, str]:
    """A distance in the unit that reads best: mm, m or km (from just under 1 of the larger
    unit, which would round to "1,000" of the smaller)."""
    if km >= 0.9995:
        return km, "km"
    if km * 1000 >= 0.9995:
        return km * 1000, "m"
    return km * 1e6, "mm"


def approx(v: float) -> str:
    """Two significant figures, never in exponent notation, thousands separated: an
    everyday equivalent is a rough figure, and "3.46e-05" reads as noise."""
    if not math.isfinite(v):
        return "n/a"
    if abs(v) >= 100:
        return f"{round(v):,}"
    if v == 0:
        return "0"
    decimals = max(0, 1 - math.floor(math.log10(abs(v))))
    text = f"{v:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


_DURATIONS = ((86400.0, "day"), (3600.0, "hour"), (60.0, "minute"), (1.0, "second"))


def describe(e: Equivalent) -> tuple[str, str]:
    """(amount, the rest) that read as one phrase, each word once: ("58 mm", "driven by an
    average US passenger car"), ("8.6%", "of a full smartphone charge"), ("6.2 minutes",
    "of light from a 10 W LED bulb"). Less than one of a thing reads as a percentage of it."""
    if e.unit == "km":
        v, unit = humanize_distance_km(e.value)
        return f"{approx(v)} {unit}", e.many
    if e.unit == "h":
        seconds = e.value * 3600.0
        # the largest unit the duration is at least two of ("90 seconds", not "1.5 minutes")
        size, word = next(((s, w) for s, w in _DURATIONS if seconds >= 2 * s), _DURATIONS[-1])
        n = approx(seconds / size)
        return f"{n} {word}" + ("" if n == "1" else "s"), e.many
    if e.value < 1 and e.part:
        return f"{approx(e.value * 100)}%", e.part
    n = approx(e.value)
    return n, e.one if n == "1" else e.many


def format_equivalent(e: Equivalent) -> str:
    amount, rest = describe(e)
    return f"{amount} {rest}"
