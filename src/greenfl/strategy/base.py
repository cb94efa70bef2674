"""The Strategy protocol: how the server configures local training and aggregates updates.

Parameters travel as one flat float32 vector (see greenfl.core.params), updates as deltas
(local minus global), so strategies are a few lines of vector arithmetic."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, Protocol, runtime_checkable

import torch

from greenfl.core.messages import ClientUpdate, FitInstructions
from greenfl.core.registry import NoParams


@runtime_checkable
class Strategy(Protocol):
    """A server strategy. Its type declares ``Params`` (greenfl.core.registry) and is
    built from an instance of it."""

    name: str

    def configure(self, round_idx: int, base: FitInstructions) -> FitInstructions: ...

    def aggregate(
        self, global_params: torch.Tensor, updates: Sequence[ClientUpdate]
    ) -> torch.Tensor:
        """Return the new global parameters (a new tensor; ``global_params`` is not changed)."""
        ...

    def aggregation_flops(self, num_updates: int, num_params: int) -> int:
        """Floating-point operations of one ``aggregate`` over ``num_updates`` updates of
        ``num_params`` coordinates: the server's counted work, from which simulation models
        its time (comparisons count as one operation each)."""
        ...

    def state_dict(self) -> dict[str, torch.Tensor]: ...

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None: ...


def mean_flops(num_updates: int, num_params: int) -> int:
    """A weighted mean of the deltas added to the global model: a multiply and an add per
    coordinate of each update, then one add per coordinate."""
    return 2 * num_updates * num_params + num_params


def sort_flops(num_updates: int, num_params: int) -> int:
    """Sorting ``num_updates`` values per coordinate: n log2 n comparisons each."""
    n = max(num_updates, 1)
    return int(round(n * math.log2(n))) * num_params if n > 1 else 0


def weighted_mean_delta(updates: Sequence[ClientUpdate]) -> torch.Tensor:
    """Weighted mean of the deltas (samples x share of the round's steps done): FedAvg's
    pseudo-gradient (negated), with partial work weighed by what it did, as in FedProx."""
    if not updates:
        raise ValueError("cannot aggregate an empty set of updates")
    weights = torch.tensor([u.weight for u in updates], dtype=torch.float64)
    weights = (weights / weights.sum()).to(torch.float32)
    stacked = torch.stack([u.delta for u in updates])
    return weights @ stacked


class StatelessStrategy:
    """Base of strategies without server state; their aggregation is a weighted mean
    unless they say otherwise, and they take no parameters unless they declare some."""

    Params: ClassVar[type] = NoParams

    def __init__(self, params: NoParams | None = None) -> None:
        return None

    def aggregation_flops(self, num_updates: int, num_params: int) -> int:
        return mean_flops(num_updates, num_params)

    def configure(self, round_idx: int, base: FitInstructions) -> FitInstructions:
        return base

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        return None
