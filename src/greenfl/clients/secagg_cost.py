"""Secure aggregation's price in simulation: the protocol is not run in-process (its
result is the plain sum, up to the fixed-point encoding), but every client's report and
the server's counted work carry what it would cost: the extra bytes of its four message
rounds and its key agreements, PRG expansions and secret sharing (greenfl.secagg.cost).
So SecAgg's carbon shows in ``greenfl run`` as in a deployment."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from greenfl.clients.transport import (
    ClientTransport,
    Completion,
    Task,
    TransportWrapper,
    with_reports,
)
from greenfl.core.messages import ClientReport, ClientUpdate, FitInstructions
from greenfl.secagg.cost import secagg_cost
from greenfl.strategy.base import Strategy


class SecAggCostTransport(TransportWrapper):
    """``inner``'s clients, each report charged one round of SecAgg among the cohort."""

    def __init__(
        self,
        inner: ClientTransport,
        num_params: int,
        neighbours: int | None,
        threshold: int | None = None,
    ) -> None:
        super().__init__(inner)
        self.num_params = num_params
        self.neighbours = neighbours
        self.threshold = threshold
        self._cohort: dict[int, int] = {}  # round -> clients dispatched in it

    def dispatch(self, task: Task) -> None:
        self._cohort[task.round_idx] = self._cohort.get(task.round_idx, 0) + 1
        self.inner.dispatch(task)

    def _collected(self, batch: list[Completion]) -> list[Completion]:
        return with_reports(batch, [self._charged(c) for c in batch])

    def _charged(self, c: Completion) -> ClientReport:
        r, n = c.report, self._cohort.get(c.task.round_idx, 1)
        if n < 2:
            return r
        cost = secagg_cost(n, self.num_params, self.neighbours, threshold=self.threshold)
        return r._replace(
            bytes_up=r.bytes_up + cost.bytes_up,
            bytes_down=r.bytes_down + cost.bytes_down,
            flops=r.flops + cost.client_flops,
        )


class SecAggCostStrategy:
    """``inner`` aggregating what SecAgg reveals (the same sum), its counted work charged
    the server's share of the protocol: unmasking, share reconstruction, PRG expansions."""

    def __init__(
        self, inner: Strategy, neighbours: int | None, threshold: int | None = None
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.neighbours = neighbours
        self.threshold = threshold

    def configure(self, round_idx: int, base: FitInstructions) -> FitInstructions:
        return self.inner.configure(round_idx, base)

    def aggregate(
        self, global_params: torch.Tensor, updates: Sequence[ClientUpdate]
    ) -> torch.Tensor:
        return self.inner.aggregate(global_params, updates)

    def aggregation_flops(self, num_updates: int, num_params: int) -> int:
        own = self.inner.aggregation_flops(num_updates, num_params)
        if num_updates < 2:
            return own
        cost = secagg_cost(num_updates, num_params, self.neighbours, threshold=self.threshold)
        return own + int(cost.server_flops)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.inner.load_state_dict(state)
