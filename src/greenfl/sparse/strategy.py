"""The server's side of sparse training as a strategy around the run's own: each update
is read at the kept coordinates only (what a client can send), the inner strategy
aggregates, and the new global model is pruned on the schedule and masked, so pruned
weights stay exactly zero whatever the inner strategy's server state (FedAvgM's momentum,
FedAdam's moments) would add there. The mask is part of this strategy's state: the run's
snapshot holds it and a resumed run restores it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from greenfl.core.messages import ClientUpdate, FitInstructions
from greenfl.sparse.server import SparseTraining
from greenfl.strategy.base import Strategy


class MaskedStrategy:
    """``inner`` under ``sparse``'s mask. The round being aggregated is the one last
    configured (the round loop configures each round before aggregating it)."""

    def __init__(self, inner: Strategy, sparse: SparseTraining) -> None:
        self.inner = inner
        self.sparse = sparse
        self.name = inner.name
        self._round = 0

    def configure(self, round_idx: int, base: FitInstructions) -> FitInstructions:
        self._round = round_idx
        return self.inner.configure(round_idx, base)

    def aggregate(
        self, global_params: torch.Tensor, updates: Sequence[ClientUpdate]
    ) -> torch.Tensor:
        sparse = self.sparse
        kept = [replace(u, delta=sparse.apply(u.delta)) for u in updates]
        new = self.inner.aggregate(global_params, kept)
        return sparse.after_aggregation(self._round, new)

    def aggregation_flops(self, num_updates: int, num_params: int) -> int:
        # the inner aggregation, then one multiply per coordinate for the mask
        return self.inner.aggregation_flops(num_updates, num_params) + num_params

    def state_dict(self) -> dict[str, Any]:
        return {"inner": self.inner.state_dict(), "sparsity": self.sparse.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state.get("inner") or {})
        self.sparse.load_state_dict(state["sparsity"])
