"""The cells of the per-config comparison (mean ± std over seeds, ratio to the first config),
shared by ``greenfl compare``'s terminal table and the comparison report so that both read
alike: one energy unit and one carbon unit per table (those of its largest figure, the rule
of greenfl.report.headline), named in the row or column label, and a reason wherever a
value is missing instead of a bare ``None``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from greenfl.analysis.seed_stats import Stat
from greenfl.core.units import J_PER_KWH
from greenfl.report.headline import carbon_unit, energy_unit, plain_number

# Metrics that are an energy or a carbon mass: their values are scaled to the table's unit.
# key -> (quantity, label before the unit, factor from the stored value to J or g)
QUANTITIES: dict[str, tuple[str, str, float]] = {
    "energy_kwh": ("energy", "energy", J_PER_KWH),
    "carbon_operational_g": ("carbon", "operational carbon", 1.0),
    "carbon_embodied_g": ("carbon", "embodied carbon", 1.0),
    "carbon_server_g": ("carbon", "server carbon, in operational", 1.0),
    "carbon_total_g": ("carbon", "total carbon", 1.0),
    "carbon_g_to_target": ("carbon", "carbon to target", 1.0),
}

# Why a metric has no value in a run: said in the cell, short.
MISSING: dict[str, str] = {
    "final_accuracy": "not evaluated",
    "rounds_to_target": "not reached",
    "time_to_target_s": "not reached",
    "carbon_g_to_target": "not reached",
    "carbon_server_g": "no ledger",
    "clients_distinct": "not recorded",
    "client_acc_worst_decile": "not evaluated",
    "epsilon": "no DP",
    "backdoor_success": "no backdoor",
    "membership_auc": "not audited",
}
TO_TARGET = ("rounds_to_target", "time_to_target_s", "carbon_g_to_target")


@dataclass(frozen=True)
class TableUnits:
    """The table's one energy unit and one carbon unit: (factor from J or g, name)."""

    energy: tuple[float, str]
    carbon: tuple[float, str]

    def of(self, key: str) -> tuple[float, str] | None:
        """(factor from the stored value, unit) of a quantity metric; None for others."""
        if key not in QUANTITIES:
            return None
        quantity, _, to_base = QUANTITIES[key]
        k, unit = self.energy if quantity == "energy" else self.carbon
        return k * to_base, unit


def table_units(values: dict[str, Sequence[float | None]]) -> TableUnits:
    """The units of a table holding ``values`` (metric key -> the values it shows)."""
    joules = [
        v * QUANTITIES[k][2]
        for k, vs in values.items()
        if k in QUANTITIES and QUANTITIES[k][0] == "energy"
        for v in vs
        if v is not None
    ]
    grams = [
        v
        for k, vs in values.items()
        if k in QUANTITIES and QUANTITIES[k][0] == "carbon"
        for v in vs
        if v is not None
    ]
    return TableUnits(energy_unit(*joules), carbon_unit(*grams))


def stat_units(stats: dict[str, dict[str, Stat]], keys: Sequence[str]) -> TableUnits:
    """The units of a table of the means of ``keys`` over the configs in ``stats``."""
    return table_units({k: [s[k].mean for s in stats.values()] for k in keys})


def label(key: str, default: str, units: TableUnits, target: float | None) -> str:
    """A row or column label naming its unit (and the accuracy "to target" means)."""
    scaled = units.of(key)
    text = f"{QUANTITIES[key][1]} ({scaled[1]})" if scaled else default
    if key in TO_TARGET and target is not None:
        text += f" at {target * 100:.2f}% accuracy"
    return text


def missing(key: str, target: float | None) -> str:
    """The text of a missing value: n/a and why."""
    if key in TO_TARGET and target is None:
        return "n/a (no target)"
    reason = MISSING.get(key)
    return f"n/a ({reason})" if reason else "n/a"


def value_text(key: str, v: float, fmt: str, units: TableUnits) -> str:
    """One value in the table's unit (quantities) or in the metric's own format."""
    scaled = units.of(key)
    if scaled is None:
        return fmt.format(v)
    return plain_number(v * scaled[0])


def ratio_text(s: Stat) -> str:
    if s.ratio_mean is None or not math.isfinite(s.ratio_mean):
        return "n/a"
    return f"{s.ratio_mean:.3g}x ± {s.ratio_std or 0.0:.2g}"


def mean_std_text(
    key: str, s: Stat, fmt: str, units: TableUnits, runs: int, target: float | None
) -> str:
    """The mean and standard deviation as "1.2 ± 0.1", with (n=k) where only k of the
    config's runs have the value, or why it is missing."""
    if s.mean is None:
        return missing(key, target)
    text = f"{value_text(key, s.mean, fmt, units)} ± {value_text(key, s.std or 0.0, fmt, units)}"
    if s.n < runs:  # e.g. the target was not reached in every seed
        text += f" (n={s.n})"
    return text
