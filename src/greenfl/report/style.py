"""One look for every plot: the same colour *and* hatch for the same component everywhere
(Okabe-Ito colours, safe for colour-blind readers; the hatches keep them apart in grey),
and units chosen by magnitude."""

from __future__ import annotations

from dataclasses import dataclass

from greenfl.core.units import J_PER_KWH, J_PER_WH, S_PER_HOUR


@dataclass(frozen=True)
class Look:
    label: str
    color: str
    hatch: str


COMPONENTS: dict[str, Look] = {
    "compute": Look("client compute", "#0072B2", "//"),
    "comm": Look("communication", "#E69F00", "--"),
    "server": Look("server (x PUE)", "#009E73", "xx"),
    "embodied": Look("embodied", "#CC79A7", "\\\\"),
}

STATUSES: dict[str, Look] = {
    "completed": Look("aggregated", "#56B4E9", ""),
    "not_aggregated": Look(
        "not aggregated (straggler, dropped, rejected, failed)", "#D55E00", "//"
    ),
}

RUN_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
RUN_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
RUN_DASHES = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)), (0, (1, 1)))

INK = "#222222"
GRID = "#dddddd"


def carbon_scale(max_g: float) -> tuple[float, str]:
    """(factor, unit) so that max_g * factor reads between 1 and 1000."""
    if max_g >= 1000:
        return 1e-3, "kgCO2e"
    if max_g >= 1 or max_g <= 0:
        return 1.0, "gCO2e"
    if max_g >= 1e-3:
        return 1e3, "mgCO2e"
    return 1e6, "µgCO2e"


def energy_scale(max_j: float) -> tuple[float, str]:
    """(factor, unit): J below 1 Wh, Wh below 1 kWh, then kWh."""
    if max_j >= J_PER_KWH:
        return 1 / J_PER_KWH, "kWh"
    if max_j >= J_PER_WH:
        return 1 / J_PER_WH, "Wh"
    return 1.0, "J"


def time_scale(max_s: float) -> tuple[float, str]:
    if max_s >= 2 * 86400:
        return 1 / 86400, "days"
    if max_s >= 2 * S_PER_HOUR:
        return 1 / S_PER_HOUR, "h"
    if max_s >= 120:
        return 1 / 60, "min"
    return 1.0, "s"
