"""The Strategy protocol: how the server configures local training and aggregates updates.

Parameters travel as one flat float32 vector (see greenfl.core.params), updates as deltas
(local minus global), so strategies are a few lines of vector arithmetic."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch

from greenfl.core.messages import ClientUpdate, FitInstructions


@runtime_checkable
class Strategy(Protocol):
    name: str

    def configure(self, round_idx: int, base: FitInstructions) -> FitInstructions: ...

    def aggregate(
        self, global_params: torch.Tensor, updates: Sequence[ClientUpdate]
    ) -> torch.Tensor:
        """Return the new global parameters (a new tensor; ``global_params`` is not changed)."""
        ...

    def state_dict(self) -> dict[str, torch.Tensor]: ...

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None: ...


def weighted_mean_delta(updates: Sequence[ClientUpdate]) -> torch.Tensor:
    """Sample-weighted mean of the deltas: FedAvg's pseudo-gradient (negated)."""
    if not updates:
        raise ValueError("cannot aggregate an empty set of updates")
    weights = torch.tensor([u.num_samples for u in updates], dtype=torch.float64)
    weights = (weights / weights.sum()).to(torch.float32)
    stacked = torch.stack([u.delta for u in updates])
    return weights @ stacked


class StatelessStrategy:
    """Mixin for strategies without server state."""

    def configure(self, round_idx: int, base: FitInstructions) -> FitInstructions:
        return base

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        return None
