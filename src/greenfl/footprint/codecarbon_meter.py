"""codecarbon as an optional energy meter (``pip install 'greenfl[codecarbon]'``).

codecarbon reads hardware counters where the machine has them (Linux RAPL, Windows' Energy
Meter Interface, Intel Power Gadget, Apple powermetrics, a Raspberry Pi's PMIC, NVIDIA GPUs
through NVML) and otherwise *models* CPU power from the processor's TDP and its load; RAM is
always its model (a few watts per module). greenfl reports what codecarbon measured as
measured, and what it modelled as estimated:

- the CPU read from a counter: energy = the counter-read parts only (CPU, GPU, and RAM where
  a PMIC measures it); codecarbon's RAM model is left out, so a row marked measured holds
  measured joules only, the same scope as greenfl's own RAPL meter (package energy);
- the CPU modelled (TDP x load, or a constant): energy = codecarbon's whole figure (CPU + RAM
  + GPU), ``estimated = True``.

Only codecarbon's joules are used. Its offline tracker never touches the network; the
country it is given only feeds its own CO2 figure, which greenfl ignores (the ledger's
carbon uses the client's fleet region). Each round is one codecarbon *task*
(``start_task``/``stop_task``) of one long-lived tracker: a tracker's start/stop cycle
cannot be repeated, its tasks can."""

from __future__ import annotations

import importlib.util
import logging
import time
from dataclasses import dataclass
from typing import Any

from greenfl.core.errors import MeterError, MissingExtraError
from greenfl.core.units import J_PER_KWH
from greenfl.footprint.measurement import Measurement

INSTALL_HINT = "--meter codecarbon needs codecarbon: pip install 'greenfl[codecarbon]'"
# Only feeds codecarbon's own CO2 figure (unused); codecarbon's config may set another.
DEFAULT_COUNTRY_ISO_CODE = "USA"
# codecarbon's CPU modes that read a hardware energy counter (others model TDP x load).
COUNTER_CPU_MODES = frozenset({"intel_rapl", "windows_emi", "intel_power_gadget"})


def codecarbon_installed() -> bool:
    return importlib.util.find_spec("codecarbon") is not None


@dataclass(frozen=True)
class CodecarbonParts:
    """How codecarbon gets each part of its figure on this machine."""

    cpu_measured: bool
    ram_measured: bool
    description: str  # e.g. "CPU(Cpu Load) model, RAM() model"


def classify_hardware(hardware: list[Any]) -> CodecarbonParts:
    """Which of codecarbon's hardware objects read counters. By class name and mode, since
    codecarbon exposes no public flag for it (checked against codecarbon 3.x)."""
    cpu = ram = False
    described = []
    for h in hardware:
        kind = type(h).__name__
        part = getattr(h, "chip_part", "")
        if kind == "CPU":
            counted = getattr(h, "_mode", "") in COUNTER_CPU_MODES
            cpu |= counted
        elif kind in ("AppleSiliconChip", "Raspberry"):
            counted = True  # powermetrics / the PMIC: measured
            cpu |= part == "CPU"
            ram |= part == "RAM"
        elif kind == "GPU":
            counted = True  # NVML / AMD SMI energy counters
        else:  # RAM (and anything newer): codecarbon's model
            counted = False
        described.append(f"{h!r} {'counter' if counted else 'model'}")
    return CodecarbonParts(cpu, ram, ", ".join(described))


class CodecarbonMeter:
    """A Meter backed by codecarbon's offline tracker; one codecarbon task per window."""

    name = "codecarbon"

    def __init__(self, tracker: Any) -> None:
        self.tracker = tracker
        self.parts: CodecarbonParts | None = None  # known after the first window
        self._seq = 0

    @classmethod
    def create(cls, country_iso_code: str | None = None) -> CodecarbonMeter:
        if not codecarbon_installed():
            raise MissingExtraError(INSTALL_HINT)
        from codecarbon import OfflineEmissionsTracker
        from codecarbon.core.config import get_hierarchical_config

        # codecarbon sets its logger to INFO on import and logs from its constructor on;
        # keep a client's terminal to greenfl's own lines.
        logging.getLogger("codecarbon").setLevel(logging.ERROR)

        country = (
            country_iso_code
            or get_hierarchical_config().get("country_iso_code")
            or DEFAULT_COUNTRY_ISO_CODE
        )
        tracker = OfflineEmissionsTracker(
            country_iso_code=country,
            output_methods=[],  # no emissions.csv, no API: greenfl keeps its own ledger
            log_level="error",
            allow_multiple_runs=True,  # several clients may share one machine (tests, demos)
            project_name="greenfl",
        )
        # codecarbon's constructor swallows its own exceptions (a decorator), leaving a
        # half-built object: check it got as far as its scheduler.
        if not hasattr(tracker, "_scheduler_monitor_power"):
            raise MeterError("codecarbon's tracker failed to initialise (see its log above)")
        meter = cls(tracker)
        # codecarbon sets up lazily, on the first task: hardware detection (CPU model, TDP
        # table) and its emissions data (pandas), seconds on a busy machine. One empty task
        # now keeps that out of the first round, and out of the way of a withdrawal.
        tracker.get_detected_hardware()
        meter.end(meter.begin())
        meter.parts = classify_hardware(list(getattr(tracker, "_hardware", [])))
        return meter

    def begin(self) -> object:
        self._seq += 1
        task = f"greenfl-{self._seq}"
        self.tracker.start_task(task)
        return (time.perf_counter(), task)

    def end(self, token: object) -> Measurement:
        t0, task = token  # type: ignore[misc]
        data = self.tracker.stop_task(task)
        elapsed = time.perf_counter() - t0
        if self.parts is None:
            self.parts = classify_hardware(list(getattr(self.tracker, "_hardware", [])))
        if data is None:  # codecarbon lost the task: no reading, the server models it
            return Measurement(elapsed, None)
        if self.parts.cpu_measured:
            kwh = data.cpu_energy + data.gpu_energy
            if self.parts.ram_measured:
                kwh += data.ram_energy
            return Measurement(elapsed, float(kwh) * J_PER_KWH)
        return Measurement(elapsed, float(data.energy_consumed) * J_PER_KWH, modelled=True)
