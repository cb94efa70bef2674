"""Width ratios and the unit counts they keep. Pure arithmetic, no torch: the config layer
can check a width without importing a model."""

from __future__ import annotations

import math

from greenfl.core.errors import ConfigError

# A width such as 0.1 is not exact in binary: 0.1 * 30 is 3.0000000000000004, whose
# ceiling would keep 4 units where the user meant 3. Products within this of an integer
# count as that integer.
_ROUNDING_SLACK = 1e-9


def check_width(width: float) -> float:
    """``width`` as a float if it is a ratio in (0, 1]; a ConfigError naming it if not."""
    value = float(width)
    if not math.isfinite(value) or not 0.0 < value <= 1.0:
        raise ConfigError(f"submodel width must be in (0, 1], got {width!r}")
    return value


def units_at(full_units: int, width: float) -> int:
    """Units of a hidden layer of ``full_units`` kept at ``width``: ceil(width x units),
    at least one, never more than the layer has (ordered dropout keeps the first ones)."""
    if full_units < 1:
        raise ConfigError(f"a layer of {full_units} units cannot be sliced")
    kept = math.ceil(check_width(width) * full_units - _ROUNDING_SLACK)
    return min(full_units, max(1, kept))


def groups_at(full_groups: int, channels: int) -> int:
    """GroupNorm groups of a sliced layer of ``channels`` channels: gcd(full groups,
    channels), the largest group count that divides both, so every group of the sliced
    layer still has the same number of channels (the full model's rule for ResNet-20, 2
    groups if the channels are even else 1, is this rule with 2 full groups)."""
    return math.gcd(full_groups, channels)
