"""Built-in eligibility schedules: a device class's chance, by local hour, of being idle,
charging and on an unmetered network, the only state in which production cross-device FL
lets a device train (Bonawitz et al., "Towards Federated Learning at Scale: System Design",
SysML 2019, section 2: devices check in only then).

What is sourced is the shape: in that deployment the number of participating devices swings
about 4x over the day, peaking at night when phones charge (Bonawitz et al. 2019, section 9).
The levels are estimates (no public per-class figure in our references), so each schedule
says so in its ``source``. A fleet file's ``[[schedule]]`` of the same name replaces one."""

from __future__ import annotations

import math

from greenfl.fleet.profiles import Schedule

PEAK_HOUR_LOCAL = 3.0  # overnight charging


def night_heavy(trough: float, peak: float) -> tuple[float, ...]:
    """24 hourly chances on a cosine that peaks at 03:00 local and bottoms out at 15:00,
    rounded to 3 decimals so that a fleet file can restate them exactly."""
    shape = [(1 + math.cos(2 * math.pi * (h - PEAK_HOUR_LOCAL) / 24)) / 2 for h in range(24)]
    return tuple(round(trough + (peak - trough) * x, 3) for x in shape)


_SHAPE = (
    "shape: ~4x day-night swing in participating devices, night peak (Bonawitz et al., "
    "SysML 2019, section 9)"
)

BUILTIN_SCHEDULES: tuple[Schedule, ...] = (
    Schedule(
        name="phone",
        hourly=night_heavy(0.1, 0.4),
        source=f"{_SHAPE}; estimate: 40% of phones idle, charging and on Wi-Fi at 03:00 "
        "local, 10% mid-afternoon, no public per-hour figure in our references",
    ),
    Schedule(
        name="tablet",
        hourly=night_heavy(0.075, 0.3),
        source=f"{_SHAPE}; estimate: below phones (tablets are charged less regularly "
        "overnight), no public figure",
    ),
    Schedule(
        name="laptop",
        hourly=night_heavy(0.05, 0.2),
        source=f"{_SHAPE}; estimate: a laptop is mostly asleep when idle with its lid "
        "closed, so few are awake, plugged in and idle at any hour; no public figure",
    ),
    Schedule(
        name="desktop",
        hourly=night_heavy(0.1, 0.4),
        source=f"{_SHAPE}; estimate: a desktop left on is idle mostly outside working "
        "hours; no public figure",
    ),
    Schedule(
        name="always",
        hourly=(1.0,) * 24,
        source="estimate: an unattended edge box on mains power and a wired network is "
        "always idle, powered and unmetered",
    ),
)
