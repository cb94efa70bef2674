"""Unit constants. Every quantity in greenfl carries its unit in its name."""

J_PER_KWH: float = 3.6e6
J_PER_WH: float = 3600.0
S_PER_HOUR: float = 3600.0
HOURS_PER_YEAR: float = 8766.0  # 365.25 days, the convention of Green Algorithms
BITS_PER_BYTE: int = 8
BYTES_PER_GB: float = 1e9
BITS_PER_MBIT: float = 1e6
G_PER_KG: float = 1000.0


def j_to_kwh(energy_j: float) -> float:
    return energy_j / J_PER_KWH


def kwh_to_j(energy_kwh: float) -> float:
    return energy_kwh * J_PER_KWH


# The largest grid intensity a fleet file or trace may give: the dirtiest grids are ~1,200.
MAX_CI_G_PER_KWH = 1e5
