"""Fleet profiles: devices, networks, grid regions, the server, and the population mix.

Device differences are data, not subclasses. Every number carries a `source`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from greenfl.core.units import MAX_CI_G_PER_KWH


class _Profile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# Bounds on a fleet file's magnitudes, far outside any real profile but far inside float64:
# a figure beyond them (1e308, 1e-320) turns into inf or an overflow in the footprint sums.
MIN_FLOPS_PER_S, MAX_FLOPS_PER_S = 1.0, 1e19  # an exascale machine is 1e18
MAX_POWER_W = 1e7  # a datacentre's worth
MAX_EMBODIED_KG = 1e7
MIN_LIFETIME_YEARS, MAX_LIFETIME_YEARS = 1e-3, 1e3
MIN_ACTIVE_SHARE = 1e-9
MIN_MBPS, MAX_MBPS = 1e-6, 1e9
MAX_KWH_PER_GB = 1e3
MAX_TAIL_S = 3600.0
MAX_PUE = 100.0
MIN_CHARGING_EFFICIENCY = 0.05
MAX_LATENCY_S = 600.0
MAX_SHARE = 1e12  # shares are relative; their sum must stay finite


# The arithmetic precisions a client can train in (``train.precision``). fp32 is every
# target's own flops_per_s / active_power_w; bf16 and fp16 are mixed precision (weights
# kept in fp32, matmuls and convolutions under torch.autocast) at the rates a target
# declares for them. ``auto``: each target's lowest-energy declared precision.
PRECISIONS = ("fp32", "bf16", "fp16")
PRECISION_CHOICES = (*PRECISIONS, "auto")


class PrecisionTarget(_Profile):
    """Mixed-precision training on one execution target: its own throughput and power.
    The FLOPs of a round are the same in any precision; its time and energy change."""

    name: Literal["bf16", "fp16"]
    flops_per_s: float = Field(ge=MIN_FLOPS_PER_S, le=MAX_FLOPS_PER_S)
    active_power_w: float = Field(ge=0, le=MAX_POWER_W)
    source: str | None = Field(None, min_length=1)
    # True: a figure with no measurement behind it (``source`` then says what it rests on)
    estimated: bool = False

    @model_validator(mode="after")
    def _sourced(self) -> PrecisionTarget:
        if self.source is None and not self.estimated:
            raise ValueError(f"precision {self.name!r} needs a source, or estimated = true")
        return self


def _unique_precisions(precisions: tuple[PrecisionTarget, ...]) -> None:
    names = [p.name for p in precisions]
    if len(names) != len(set(names)):
        raise ValueError(f"duplicate precision names in {names}")


class ExecutionTarget(_Profile):
    """One place a device can run training (e.g. CPU vs NPU, or a DVFS level), in fp32 at
    ``flops_per_s`` / ``active_power_w``, and in the mixed precisions it declares."""

    name: str = Field(min_length=1)
    flops_per_s: float = Field(ge=MIN_FLOPS_PER_S, le=MAX_FLOPS_PER_S)
    active_power_w: float = Field(ge=0, le=MAX_POWER_W)
    source: str = Field(min_length=1)
    precisions: tuple[PrecisionTarget, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> ExecutionTarget:
        _unique_precisions(self.precisions)
        return self

    def precision(self, wanted: str) -> PrecisionTarget | None:
        """The declared precision a client asked for ``wanted`` trains in; None: fp32 (the
        target's own rates), which is also the fallback where ``wanted`` is not declared.
        ``auto``: the declared precision of least energy per FLOP, if below fp32's."""
        if wanted not in PRECISION_CHOICES:
            raise ValueError(f"unknown precision {wanted!r}: one of {', '.join(PRECISION_CHOICES)}")
        if wanted == "auto":
            best, best_j = None, self.active_power_w / self.flops_per_s
            for p in self.precisions:
                if p.active_power_w / p.flops_per_s < best_j:
                    best, best_j = p, p.active_power_w / p.flops_per_s
            return best
        return next((p for p in self.precisions if p.name == wanted), None)


class DeviceProfile(_Profile):
    name: str = Field(min_length=1)
    flops_per_s: float = Field(ge=MIN_FLOPS_PER_S, le=MAX_FLOPS_PER_S)
    active_power_w: float = Field(ge=0, le=MAX_POWER_W)
    idle_power_w: float = Field(ge=0, le=MAX_POWER_W)
    embodied_kg: float = Field(ge=0, le=MAX_EMBODIED_KG)
    lifetime_years: float = Field(ge=MIN_LIFETIME_YEARS, le=MAX_LIFETIME_YEARS)
    active_share: float = Field(ge=MIN_ACTIVE_SHARE, le=1)
    # Battery devices: the share of the energy drawn at the wall that reaches the device
    # (charger and battery losses); the wall-side energy is the device's divided by it.
    # 1: mains power, its power figures already at the wall.
    charging_efficiency: float = Field(1.0, ge=MIN_CHARGING_EFFICIENCY, le=1)
    # The daily eligibility schedule (idle, charging, unmetered) under
    # fleet.eligibility = "production": a built-in one (greenfl.fleet.schedules) or a fleet
    # file's [[schedule]].
    schedule: str = Field("always", min_length=1)
    source: str = Field(min_length=1)
    targets: tuple[ExecutionTarget, ...] = ()
    # The mixed precisions of the device's own numbers (a device without targets); a device
    # with [[device.targets]] declares them on each target.
    precisions: tuple[PrecisionTarget, ...] = ()

    @model_validator(mode="after")
    def _unique_targets(self) -> DeviceProfile:
        names = [t.name for t in self.targets]
        if len(names) != len(set(names)):
            raise ValueError(f"duplicate execution target names in {names}")
        _unique_precisions(self.precisions)
        if self.targets and self.precisions:
            raise ValueError(
                "a device with targets declares its precisions on each target "
                "([[device.targets.precisions]]), not on the device"
            )
        return self

    def target(self, name: str | None) -> ExecutionTarget:
        """The named target; the device's own numbers when it declares none."""
        if name is None or not self.targets:
            if self.targets:
                return self.targets[0]
            return ExecutionTarget(
                name="default",
                flops_per_s=self.flops_per_s,
                active_power_w=self.active_power_w,
                source=self.source,
                precisions=self.precisions,
            )
        for t in self.targets:
            if t.name == name:
                return t
        raise KeyError(f"device {self.name!r} has no target {name!r}")


class NetworkProfile(_Profile):
    name: str = Field(min_length=1)
    up_mbps: float = Field(ge=MIN_MBPS, le=MAX_MBPS)
    down_mbps: float = Field(ge=MIN_MBPS, le=MAX_MBPS)
    radio_power_w: float = Field(ge=0, le=MAX_POWER_W)
    network_kwh_per_gb: float = Field(ge=0, le=MAX_KWH_PER_GB)
    # The radio's high-power tail after each transfer (LTE's RRC inactivity timer); 0: none.
    tail_s: float = Field(0.0, ge=0, le=MAX_TAIL_S)
    tail_power_w: float = Field(0.0, ge=0, le=MAX_POWER_W)
    # Metered (mobile data): under fleet.eligibility = "production" a device never checks
    # in over it, and trains over its home network instead.
    metered: bool = False
    # The share of network_kwh_per_gb spent in the access network (on the client's grid);
    # the rest (core network, the server side) is charged at the server's grid.
    access_share: float = Field(1.0, ge=0, le=1)
    # The per-GB energy under fleet.network_energy = "marginal" (what one more GB adds to
    # a network whose power barely follows its traffic); unset: the average figure.
    marginal_kwh_per_gb: float | None = Field(None, ge=0, le=MAX_KWH_PER_GB)
    # Connection set-up before the round's first transfer (radio promotion, TCP and TLS
    # handshakes) and the round trip each transfer waits for; the radio is on through both.
    setup_s: float = Field(0.0, ge=0, le=MAX_LATENCY_S)
    rtt_ms: float = Field(0.0, ge=0, le=MAX_LATENCY_S * 1000)
    source: str = Field(min_length=1)

    @property
    def latency_s(self) -> float:
        """Seconds a client round spends on set-up and round trips: the set-up once, and a
        round trip before each of its two transfers."""
        return self.setup_s + 2 * self.rtt_ms / 1000

    def kwh_per_gb(self, model: str) -> float:
        """The per-GB energy under ``model`` (average or marginal)."""
        if model == "marginal" and self.marginal_kwh_per_gb is not None:
            return self.marginal_kwh_per_gb
        return self.network_kwh_per_gb


class Region(_Profile):
    name: str = Field(min_length=1)
    label: str = ""
    ci_g_per_kwh: float = Field(ge=0, le=MAX_CI_G_PER_KWH)
    utc_offset_h: float = Field(0.0, ge=-12, le=14)
    hourly: tuple[float, ...] | None = None
    trace: str | None = Field(None, description="CSV file timestamp,ci_g_per_kwh")
    trace_year: int | None = Field(
        None,
        ge=1970,
        le=2100,
        description="the trace is this calendar year's hourly values (UTC), repeated every "
        "year: a run starts at its own date and hour within it",
    )
    source: str = Field(min_length=1)

    @field_validator("hourly")
    @classmethod
    def _day(cls, v: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if v is not None:
            if len(v) != 24:
                raise ValueError(f"hourly needs 24 values (00h..23h local), got {len(v)}")
            if min(v) < 0 or max(v) > MAX_CI_G_PER_KWH:
                raise ValueError(f"hourly values must be in 0..{MAX_CI_G_PER_KWH:g}")
        return v

    @model_validator(mode="after")
    def _year_needs_trace(self) -> Region:
        if self.trace_year is not None and not self.trace:
            raise ValueError('trace_year names the year of a trace: set trace = "file.csv" too')
        return self


# estimate: effective fp32 throughput of the built-in fleet's one-socket CPU server (250 W):
# ~3x the built-in desktop's 1e11 FLOP/s for a 32-core part with wider vector units; no
# public measurement. A fleet file's [server] flops_per_s replaces it.
DEFAULT_SERVER_FLOPS_PER_S = 3.0e11


class ServerProfile(_Profile):
    """The aggregation server. In simulation its time is modelled from counted work
    (aggregation and evaluation FLOPs / ``flops_per_s``); ``mode`` says what its energy is:

    * ``shared`` (default): a coordinator on a shared cloud machine, charged only the
      marginal energy of its work, (power_w - idle_power_w) x active time;
    * ``dedicated``: a machine kept for the run, charged idle_power_w over the whole
      simulated run (waits and client phases included) plus that active increment.

    Both are times the datacentre's ``pue``."""

    power_w: float = Field(ge=0, le=MAX_POWER_W)
    idle_power_w: float = Field(0.0, ge=0, le=MAX_POWER_W)
    flops_per_s: float = Field(
        DEFAULT_SERVER_FLOPS_PER_S, ge=MIN_FLOPS_PER_S, le=MAX_FLOPS_PER_S, allow_inf_nan=False
    )
    pue: float = Field(ge=1, le=MAX_PUE)
    region: str = Field(min_length=1)
    mode: Literal["shared", "dedicated"] = "shared"
    source: str = Field(min_length=1)

    @model_validator(mode="after")
    def _idle_below_active(self) -> ServerProfile:
        if self.idle_power_w > self.power_w:
            raise ValueError(
                f"idle_power_w ({self.idle_power_w:g} W) exceeds power_w ({self.power_w:g} W)"
            )
        return self

    @property
    def standby_w(self) -> float:
        """Power charged while the server waits: its idle draw if dedicated, else none."""
        return self.idle_power_w if self.mode == "dedicated" else 0.0


class Schedule(_Profile):
    """A device class's chance, by local hour (00h..23h), of being eligible to train:
    idle, charging and on an unmetered network."""

    name: str = Field(min_length=1)
    hourly: tuple[float, ...]
    source: str = Field(min_length=1)

    @field_validator("hourly")
    @classmethod
    def _day(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if len(v) != 24:
            raise ValueError(f"hourly needs 24 values (00h..23h local), got {len(v)}")
        if min(v) < 0 or max(v) > 1:
            raise ValueError("hourly values are chances, in 0..1")
        return v


class PopulationEntry(_Profile):
    device: str
    network: str
    region: str
    share: float = Field(gt=0, le=MAX_SHARE)
    target: str | None = None
    # The unmetered network such a device trains over under production eligibility when
    # its own network is metered; unset: the fleet's first unmetered network.
    home_network: str | None = None
