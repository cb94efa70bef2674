"""Energy meters for the process's own work (the server, or a real client).

RaplMeter reads Linux RAPL counters under /sys/class/powercap; where none are readable,
``best_meter()`` gives the NullMeter and energy is modelled from a power profile, with
``estimated = True``. No meter ever raises because counters are missing. ``make_meter``
picks one by name (``greenfl join --meter``), including the optional codecarbon meter."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from greenfl.core.errors import MeterError
from greenfl.footprint import codecarbon_meter
from greenfl.footprint.measurement import Measurement, Meter

POWERCAP = Path("/sys/class/powercap")


class NullMeter:
    """Measures time only."""

    name = "null"

    def begin(self) -> object:
        return time.perf_counter()

    def end(self, token: object) -> Measurement:
        assert isinstance(token, float)
        return Measurement(time.perf_counter() - token, None)


@dataclass(frozen=True)
class _RaplDomain:
    energy_file: Path
    max_uj: int


class RaplMeter:
    """Package-level RAPL energy (all of the CPU package: other processes' work included)."""

    name = "rapl"

    def __init__(self, domains: list[_RaplDomain]) -> None:
        self.domains = domains

    @classmethod
    def discover(cls, root: Path = POWERCAP) -> RaplMeter | None:
        domains = []
        for d in sorted(root.glob("intel-rapl:*")):
            if d.name.count(":") != 1:  # sub-domains (core, uncore) are inside the package
                continue
            energy, max_range = d / "energy_uj", d / "max_energy_range_uj"
            try:
                int(energy.read_text())
                max_uj = int(max_range.read_text()) if max_range.exists() else 2**63
            except (OSError, ValueError):
                continue
            domains.append(_RaplDomain(energy, max_uj))
        return cls(domains) if domains else None

    def _read(self) -> list[int]:
        return [int(d.energy_file.read_text()) for d in self.domains]

    def begin(self) -> object:
        return (time.perf_counter(), self._read())

    def end(self, token: object) -> Measurement:
        t0, e0 = token  # type: ignore[misc]
        e1 = self._read()
        elapsed = time.perf_counter() - t0
        total_uj = 0
        for d, a, b in zip(self.domains, e0, e1, strict=True):
            total_uj += b - a if b >= a else b + d.max_uj - a  # the counter wrapped
        return Measurement(elapsed, total_uj / 1e6)


def best_meter(root: Path = POWERCAP) -> Meter:
    return RaplMeter.discover(root) or NullMeter()


METER_NAMES = ("auto", "rapl", "codecarbon", "none")


def make_meter(name: str, root: Path = POWERCAP) -> Meter:
    """The meter ``greenfl join --meter NAME`` asks for. ``auto``: RAPL where readable, else
    codecarbon where installed, else none (energy modelled by the server, estimated)."""
    if name == "none":
        return NullMeter()
    if name == "rapl":
        rapl = RaplMeter.discover(root)
        if rapl is None:
            raise MeterError(
                f"--meter rapl: no readable RAPL counters under {root}/intel-rapl:* "
                "(not an Intel/AMD Linux machine, or energy_uj is root-only: "
                "sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj)"
            )
        return rapl
    if name == "codecarbon":
        return codecarbon_meter.CodecarbonMeter.create()
    if name == "auto":
        rapl = RaplMeter.discover(root)
        if rapl is not None:
            return rapl
        return (
            codecarbon_meter.CodecarbonMeter.create()
            if codecarbon_meter.codecarbon_installed()
            else NullMeter()
        )
    raise MeterError(f"--meter {name!r}: choose one of {', '.join(METER_NAMES)}")


def describe_meter(meter: Meter) -> str:
    """One line for a client's terminal: which meter, and whether its joules are measured."""
    if isinstance(meter, RaplMeter):
        return f"rapl ({len(meter.domains)} package counter(s): measured)"
    if isinstance(meter, NullMeter):
        return "none (the server models energy from the device profile: estimated)"
    parts = getattr(meter, "parts", None)
    if parts is not None:
        verdict = "measured" if parts.cpu_measured else "modelled by codecarbon: estimated"
        return f"{meter.name} ({parts.description}; {verdict})"
    return meter.name
