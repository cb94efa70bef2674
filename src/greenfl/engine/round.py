"""One round as data: the context that flows through the named steps (greenfl.engine.steps),
each step filling in what it decided, and the round's ledger row and record built from it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from greenfl.accounting.columns import CohortAccount
from greenfl.accounting.server import ServerCost
from greenfl.core.messages import ClientReport, FitInstructions
from greenfl.engine.adaptation import RoundPlan
from greenfl.engine.client_eval import client_acc_columns
from greenfl.engine.observers import Observed
from greenfl.engine.partial import NO_PARTIAL_WORK, PartialWork
from greenfl.engine.records import RoundRecord
from greenfl.footprint.measurement import Measurement
from greenfl.models.evaluate import ClientAccuracy

_NONE = np.zeros(0, dtype=np.int64)


@dataclass
class RoundContext:
    """A round in the making. Each field is set by the step named beside it."""

    round_idx: int
    wall0: float  # perf_counter at the round's start, for wall_s
    # plan: the round's parameters, and the wait for a lower-carbon window (the server
    # idles meanwhile, and that counts)
    plan: RoundPlan | None = None
    wait_s: float = 0.0
    idle_j: float = 0.0
    idle_g: float = 0.0
    start_s: float = 0.0
    # select: who was available, and who was asked (with each one's profile row)
    num_available: int = 0
    cohort: np.ndarray = field(default_factory=lambda: _NONE)
    rows: np.ndarray = field(default_factory=lambda: _NONE)
    # ... and the phases before the clients' work: the check-in (selection) window and
    # the configuration; the work starts at work_start_s
    checkin_s: float = 0.0
    config_s: float = 0.0
    work_start_s: float = 0.0
    # fit: what was asked of each (with sub-models, each client's width, in cohort
    # order), and what came back
    sent: FitInstructions | None = None
    widths: np.ndarray | None = None
    work: PartialWork = NO_PARTIAL_WORK
    reports: list[ClientReport] = field(default_factory=list)
    # account: each client's footprint under the deadline and drop-outs; who is aggregated
    account: CohortAccount | None = None
    accepted: list[ClientReport] = field(default_factory=list)
    # aggregate + evaluate: the new model's quality, and the server's window over both
    accuracy: float = math.nan
    loss: float = math.nan
    client_acc: ClientAccuracy | None = None
    meter_token: object = None  # a measured server's open window
    measured: Measurement | None = None
    server_flops: float = 0.0
    server_measured: bool = False
    # server: its footprint of the round
    server: ServerCost | None = None
    # commit: the round's carbon, what observers saw, and the record
    round_carbon_g: float = 0.0
    observed: Observed | None = None
    record: RoundRecord | None = None
    wall_s: float = 0.0

    @property
    def phases_s(self) -> float:
        """Seconds from the round's start to the clients' work: check-in and configuration."""
        return self.checkin_s + self.config_s

    @property
    def report_window_s(self) -> float:
        """The reporting phase: from the configuration's end to the round's close."""
        return self.account.close_s if self.account is not None else 0.0

    @property
    def k(self) -> int:
        """The updates the round aggregates at most (its plan's clients per round)."""
        assert self.plan is not None
        return self.plan.clients_per_round

    def ledger_row(self) -> dict[str, Any]:
        """The round's row of the ledger's ``rounds`` table."""
        server, measured = self.server, self.measured
        assert server is not None and measured is not None and self.observed is not None
        return {
            "round": self.round_idx,
            "start_s": self.start_s,
            "end_s": server.end_s,
            "wait_s": self.wait_s,
            "accuracy": self.accuracy,
            "loss": self.loss,
            "selected": len(self.reports),
            "completed": len(self.accepted),
            "server_s": server.server_s,
            "server_energy_j": server.energy_j,
            "server_idle_energy_j": server.idle_j,
            "server_carbon_g": server.carbon_g,
            "server_ci_g_per_kwh": server.ci_g_per_kwh,
            "server_estimated": int(measured.estimated),
            "server_flops": self.server_flops,
            "server_measured": int(self.server_measured),
            "wall_s": self.wall_s,
            "checkin_s": self.checkin_s,
            "config_s": self.config_s,
            "report_window_s": self.report_window_s,
            **client_acc_columns(self.client_acc),
            **self.observed.columns,
        }
