"""Round probes: measurements of the new global model beyond its test accuracy, each a
nullable column of the ledger's ``rounds`` table (the backdoor's success rate; the privacy
spent). A probe sees the round number and the global parameters, nothing of the clients."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from torch import nn

from greenfl.attacks import backdoor_success


class RoundProbe(Protocol):
    def measure(self, round_idx: int, global_params: torch.Tensor) -> dict[str, float | None]:
        """This round's columns, by ledger column name."""
        ...


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
        self.test = test
        self.input_shape = input_shape
        self.target = target
        self.trigger_size = trigger_size
        self.trigger_value = trigger_value

    def measure(self, round_idx: int, global_params: torch.Tensor) -> dict[str, float | None]:
        rate = backdoor_success(
            self.model, global_params, self.test, self.input_shape, self.target,
            self.trigger_size, self.trigger_value,
        )  # fmt: skip
        return {"backdoor_success": rate}


def measure_all(
    probes: Sequence[RoundProbe], round_idx: int, global_params: torch.Tensor
) -> dict[str, float | None]:
    """Every probe's columns for the round, merged."""
    columns: dict[str, float | None] = {}
    for probe in probes:
        columns.update(probe.measure(round_idx, global_params))
    return columns
