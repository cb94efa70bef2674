"""The backdoor's success, measured each round: the share of triggered test inputs of other
classes that the new global model puts in the backdoor's target class (ledger column
``backdoor_success``). It sees only the round's global model, nothing of the clients."""

from __future__ import annotations

import torch
from torch import nn

from greenfl.attacks.data import share_classified_as, triggered_inputs
from greenfl.engine.observers import Observation, Observer, RoundView


class BackdoorProbe(Observer):
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

    def observe(self, view: RoundView) -> Observation:
        rate = share_classified_as(self.model, view.global_params, self.inputs, self.target)
        return Observation(columns={"backdoor_success": rate})
