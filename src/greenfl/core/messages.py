"""The messages that cross the seam between the round loop and its clients, in simulation
and in deployment alike: what a client is asked to do (FitInstructions), what an aggregation
strategy receives (ClientUpdate), and what a client's round gave back (ClientReport)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import torch


@dataclass(frozen=True)
class FitInstructions:
    """What a client is asked to do in one round."""

    local_epochs: int
    batch_size: int
    lr: float
    momentum: float = 0.0
    prox_mu: float = 0.0

    def with_(self, **changes: float | int) -> FitInstructions:
        return replace(self, **changes)


@dataclass(frozen=True)
class ClientUpdate:
    client_id: int
    delta: torch.Tensor  # flat float32: local params - global params
    num_samples: int


class ClientReport(NamedTuple):
    """What one client's round gave back. A record (a named tuple): the accounting reads a
    cohort's reports column by column with one ``zip``."""

    client_id: int
    status: str  # completed | failed | rejected | straggler (withdrawn when its round closed)
    reason: str | None
    delta: torch.Tensor | None  # decoded update; None unless completed
    num_samples: int
    flops: float
    loss: float
    bytes_up: int
    bytes_down: int
    measured_energy_j: float | None = None  # a real client's own meter, where it has one
    measured_compute_s: float | None = None
    energy_estimated: bool = False  # measured_energy_j is the client meter's own model
