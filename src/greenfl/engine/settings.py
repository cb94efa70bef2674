"""The engine's narrow settings: what it needs to know beyond the objects it is handed.
greenfl.factories fills them from a RunConfig; the engine never sees the config."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from greenfl.core.messages import FitInstructions
from greenfl.scheduling.phases import NO_TIMING, RoundTiming


@dataclass(frozen=True)
class RoundRules:
    """What a round asks of each client, unless an adaptive policy picks the round's
    cohort size, epochs and batch size."""

    clients_per_round: int = 10
    local_epochs: int = 1
    batch_size: int = 16
    lr: float = 0.1
    momentum: float = 0.0
    max_local_steps: int = 0
    # Local DP-SGD on every client (both 0: plain SGD).
    dp_noise_multiplier: float = 0.0
    dp_max_grad_norm: float = 0.0

    def instructions(self) -> FitInstructions:
        return FitInstructions(
            self.local_epochs,
            self.batch_size,
            self.lr,
            self.momentum,
            max_steps=self.max_local_steps,
            dp_noise_multiplier=self.dp_noise_multiplier,
            dp_max_grad_norm=self.dp_max_grad_norm,
        )


@dataclass(frozen=True)
class WorldRules:
    """How the simulated world treats a round: who is available, how many are asked, when
    the round closes, who drops out, and whether late work counts."""

    availability: str = "always"  # always | diurnal | production (eligibility schedules)
    over_selection: float = 0.0  # extra share asked; the first k to finish are kept
    deadline_s: float | None = None
    dropout_prob: float = 0.0
    aggregate_partial: bool = False  # clients the deadline would cut send what they did
    timing: RoundTiming = NO_TIMING  # the selection and configuration phases


@dataclass(frozen=True)
class StopRules:
    rounds: int = 20
    target_accuracy: float | None = None
    carbon_budget_g: float | None = None


@dataclass(frozen=True)
class AsyncRules:
    """Asynchronous FL (``engine.mode = "async"``, the ``[async]`` section): how many train at
    once, how many updates make a server step, how staleness weighs, and the carbon-aware
    throttle on dispatch."""

    concurrency: int = 100
    buffer_size: int = 10
    staleness: str = "polynomial"  # constant | polynomial | hinge
    staleness_a: float = 0.5
    staleness_b: float = 4.0
    carbon_aware: bool = False
    carbon_slack_s: float = 3600.0
    carbon_tolerance: float = 0.05
    carbon_quantile: float = 0.5
    min_concurrency_share: float = 0.25
    checkin_interval_s: float = 60.0
    wake_s: float = 900.0
    max_candidates: int = 10_000


@dataclass(frozen=True)
class EngineSettings:
    seed: int = 0
    start_utc: datetime = datetime(2026, 1, 15, tzinfo=timezone.utc)
    round: RoundRules = RoundRules()
    world: WorldRules = WorldRules()
    stop: StopRules = StopRules()
    accounting: bool = True  # footprint and ledger rows (off only to measure overhead)
    checkpoint: bool = True  # the state saved with each round's rows
    threads: int = 1  # torch's intra-op threads for the run (0: torch's default)
    # None: synchronous rounds; else the async loop's rules (greenfl.engine.async_loop)
    asynchronous: AsyncRules | None = None
