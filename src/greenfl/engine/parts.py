"""What the engine is handed: the run's parts, built once by the composition root
(greenfl.factories), and the live pieces a run carries from round to round."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from greenfl.accounting.sources import GridChoice
from greenfl.clients.transport import ClientTransport
from greenfl.data.base import FederatedDataset
from greenfl.engine.adaptation import RoundParams
from greenfl.engine.client_eval import ClientEvaluator
from greenfl.engine.costs import CostModel
from greenfl.engine.observers import RoundObserver
from greenfl.engine.outcome import SummaryFacts
from greenfl.engine.records import RoundRecord
from greenfl.engine.server_work import ServerWorkModel
from greenfl.engine.settings import EngineSettings
from greenfl.engine.state import LoopState
from greenfl.engine.waiting import CarbonWait
from greenfl.fleet.catalog import Fleet
from greenfl.fleet.population import Population
from greenfl.footprint.intensity import RegionalIntensity
from greenfl.footprint.measurement import Meter
from greenfl.ledger.writer import LedgerWriter
from greenfl.scheduling.clock import SimClock
from greenfl.selection.base import ClientSelector
from greenfl.strategy.base import Strategy

RNG_STREAMS = ("selection", "availability", "dropout", "adapt")


@dataclass(frozen=True)
class RunParts:
    """One run's objects. ``server_work`` None: the server's time is measured on this
    host (a deployment, or ``engine.server_meter = "measured"``)."""

    settings: EngineSettings
    model: nn.Module
    dataset: FederatedDataset
    fleet: Fleet
    population: Population
    grid: GridChoice
    sources: RegionalIntensity
    strategy: Strategy
    selector: ClientSelector
    transport: ClientTransport
    ledger: LedgerWriter
    costs: CostModel
    round_params: RoundParams
    waiting: CarbonWait | None
    server_work: ServerWorkModel | None
    meter: Meter
    client_eval: ClientEvaluator
    observers: tuple[RoundObserver, ...]
    summary: SummaryFacts
    # what the async loop's carbon-aware throttle plans on (async.carbon_aware only)
    forecast: RegionalIntensity | None = None

    @property
    def server_region(self) -> int:
        return self.fleet.region_index(self.fleet.server.region)


@dataclass
class Live:
    """What changes as the run goes: its state (saved with every round), its random
    streams and simulated clock, the central test data, and the rounds so far."""

    state: LoopState
    rngs: dict[str, np.random.Generator]
    clock: SimClock
    test_data: tuple[torch.Tensor, torch.Tensor]
    history: list[RoundRecord] = field(default_factory=list)

    @classmethod
    def start(cls, parts: RunParts, global_params: torch.Tensor) -> Live:
        n = parts.population.size
        state = LoopState(
            round=0,
            global_params=global_params,
            now_s=0.0,
            participation=np.zeros(n, dtype=np.int32),
            last_selected=np.full(n, -1, dtype=np.int32),
            last_loss=np.full(n, np.nan, dtype=np.float32),
            rng_states={},
        )
        seed = parts.settings.seed
        rngs = {
            name: np.random.default_rng([seed, stream])
            for stream, name in enumerate(RNG_STREAMS, start=1)
        }
        clock = SimClock(parts.settings.start_utc)
        return cls(state, rngs, clock, parts.dataset.test_data())
