"""Round probes: measurements of the new global model beyond its test accuracy, each a
nullable column of the ledger's ``rounds`` table (the backdoor's success rate; the privacy
spent). A probe sees the round number and the global parameters, nothing of the clients."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import nn

from greenfl.attacks.data import share_classified_as, triggered_inputs
from greenfl.core.messages import ClientReport, FitInstructions


@dataclass(frozen=True)
class RoundFacts:
    """What a probe may know of a finished round: its number, the new global parameters,
    how many clients could be picked, and whose updates were aggregated with how many
    samples under which instructions (per-client step caps included)."""

    round_idx: int
    global_params: torch.Tensor
    num_available: int
    cohort_size: int
    aggregated_ids: np.ndarray
    aggregated_samples: np.ndarray
    instructions: FitInstructions


def round_facts(
    round_idx: int,
    global_params: torch.Tensor,
    num_available: int,
    cohort_size: int,
    aggregated: Sequence[ClientReport],
    instructions: FitInstructions,
) -> RoundFacts:
    """The facts of a round whose ``aggregated`` reports went into the new model."""
    ids = np.array([r.client_id for r in aggregated], dtype=np.int64)
    samples = np.array([r.num_samples for r in aggregated], dtype=np.int64)
    return RoundFacts(round_idx, global_params, num_available, cohort_size, ids, samples,
                      instructions)  # fmt: skip


class RoundProbe(Protocol):
    def measure(self, facts: RoundFacts) -> dict[str, float | None]:
        """This round's columns, by ledger column name."""
        ...

    def state_dict(self) -> dict[str, torch.Tensor]:
        """What a resumed run needs to measure on exactly (the snapshot holds it)."""
        ...

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None: ...


class BackdoorProbe:
    """The share of triggered test inputs of other classes that the global model puts in
    the backdoor's target class (ledger column ``backdoor_success``)."""

    def __init__(
        self,
        model: nn.Module,
        test: tuple[torch.Tensor, torch.Tensor],
        input_shape: tuple[int, ...],
        target: int,
        trigger_size: int,
        trigger_value: float,
    ) -> None:
        self.model = model
        self.target = target
        # stamped once: only the model changes from round to round
        self.inputs = triggered_inputs(test, input_shape, target, trigger_size, trigger_value)

    def measure(self, facts: RoundFacts) -> dict[str, float | None]:
        rate = share_classified_as(self.model, facts.global_params, self.inputs, self.target)
        return {"backdoor_success": rate}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}  # each round's rate depends on that round's model alone

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        return None


def measure_all(probes: Sequence[RoundProbe], facts: RoundFacts) -> dict[str, float | None]:
    """Every probe's columns for the round, merged."""
    columns: dict[str, float | None] = {}
    for probe in probes:
        columns.update(probe.measure(facts))
    return columns
