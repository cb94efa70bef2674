"""Asynchronous FL (issue 30, ``engine.mode = "async"``): the round loop whose "round" is a
server step. Each step gathers a buffer of updates from the event flow
(greenfl.engine.async_flow), accounts each over its own client's interval, applies them
weighed by staleness, then evaluates, prices the server and commits through the same steps
as a synchronous round (greenfl.engine.steps), so the ledger, the observers, stopping and
resume are the synchronous loop's.

One server step, as named steps:

gather     run the events until ``buffer_size`` updates have arrived
account    each update's time, energy and carbon over [its dispatch, its arrival] at its
           grid's intensity then, with its model version and staleness
aggregate  the strategy's step (FedBuff, FedAsync: staleness-aware; a robust strategy gets
           the deltas scaled by their staleness weights)
evaluate, server, commit   as in a synchronous round
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

import numpy as np
import torch

from greenfl.accounting.cohort import account_cohort
from greenfl.core.messages import ClientUpdate
from greenfl.engine.async_flow import Arrival, AsyncFlow
from greenfl.engine.loop import PolicyState, RoundLoop
from greenfl.engine.parts import Live, RunParts
from greenfl.engine.round import RoundContext
from greenfl.engine.settings import AsyncRules
from greenfl.engine.steps import commit, evaluate, server
from greenfl.ledger.rows import ColumnRows
from greenfl.ledger.schema import AGGREGATED
from greenfl.strategy.asynchronous import AsyncStrategy, staleness_weight


class Flow(Protocol):
    """Where a server step's updates come from: the simulated event flow (AsyncFlow), or a
    deployment's live one (greenfl.deploy.server.live_flow)."""

    def gather(self, k: int) -> list[Arrival]: ...

    def settle(self, arrivals: list[Arrival], end_s: float) -> None: ...

    @property
    def eligible_count(self) -> int: ...

    def base_params(self, version: int) -> torch.Tensor | None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


FlowFactory = Callable[[RunParts, Live, AsyncRules], Flow]


class AsyncPolicyState(PolicyState):
    """The policies' state, and the flow's (tasks in flight, the models they train from)."""

    def __init__(self, parts: RunParts, flow: Flow) -> None:
        super().__init__(parts)
        self.flow = flow

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "async": self.flow.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.flow.load_state_dict(state.get("async") or {})


class AsyncLoop(RoundLoop):
    """An asynchronous run; ``run_round`` is one server step. ``flow_factory`` makes where
    the updates come from (default: the simulated flow)."""

    def __init__(self, parts: RunParts, flow_factory: FlowFactory | None = None) -> None:
        super().__init__(parts)
        rules = parts.settings.asynchronous
        assert rules is not None, "AsyncLoop needs settings.asynchronous"
        self.rules: AsyncRules = rules
        make = flow_factory if flow_factory is not None else AsyncFlow
        self.flow: Flow = make(parts, self.live, rules)
        self.policies = AsyncPolicyState(parts, self.flow)

    def _steps(self, ctx: RoundContext) -> None:
        """One server step: gather, account, aggregate, then the synchronous round's
        evaluate, server and commit; the loop writes its row as a round's."""
        parts, live = self.parts, self.live
        ctx.plan = parts.round_params.plan(live.rngs["adapt"])
        ctx.start_s = live.state.now_s
        ctx.sent = parts.settings.round.instructions()
        arrivals = self.flow.gather(self.rules.buffer_size)
        self._account(ctx, arrivals)
        self._aggregate(ctx, arrivals)
        for step in (evaluate, server, commit):
            step(parts, live, ctx)
        assert ctx.server is not None
        self.flow.settle(arrivals, ctx.server.end_s)

    # ---- the step's own parts -----------------------------------------------------------
    def _account(self, ctx: RoundContext, arrivals: list[Arrival]) -> None:
        """Each update over its own interval; the step's reporting window runs from the
        step's start to its last arrival."""
        parts, live = self.parts, self.live
        ids = np.array([a.flight.client_id for a in arrivals], dtype=np.int64)
        starts = np.array([a.flight.start_s for a in arrivals], dtype=np.float64)
        versions = np.array([a.flight.version for a in arrivals], dtype=np.int64)
        ctx.cohort, ctx.rows = ids, parts.population.entry[ids]
        ctx.reports = [a.completion.report for a in arrivals]
        ctx.num_available = self.flow.eligible_count
        account = account_cohort(
            ctx.round_idx,
            ctx.start_s,
            ctx.reports,
            parts.population,
            parts.costs.table,
            parts.sources,
            len(ctx.reports),
            None,
            0.0,
            live.rngs["dropout"],
            rows=ctx.rows,
            cohort=ids,
            starts_s=starts,
            drop_at_s=np.array(
                [
                    a.flight.finish_s - a.flight.start_s if a.flight.dropped else np.inf
                    for a in arrivals
                ]
            ),  # fmt: skip
        )
        last_s = max((a.flight.finish_s for a in arrivals), default=ctx.start_s)
        rows = account.rows
        assert isinstance(rows, ColumnRows)  # per-update starts: never the deferred path
        rows.columns["model_version"] = versions
        rows.columns["staleness"] = (ctx.round_idx - 1) - versions
        ctx.account = replace(account, close_s=max(last_s - ctx.start_s, 0.0))
        ctx.accepted = [
            r for r, st in zip(ctx.reports, account.status, strict=True) if st in AGGREGATED
        ]

    def _aggregate(self, ctx: RoundContext, arrivals: list[Arrival]) -> None:
        """The strategy's step over the accepted updates, each with its staleness weight
        and the model it was trained from."""
        parts, st = self.parts, self.live.state
        ctx.server_measured = parts.server_work is None
        if ctx.server_measured:
            ctx.meter_token = parts.meter.begin()
        if not ctx.accepted:
            return
        r = self.rules
        version = {a.flight.client_id: a.flight.version for a in arrivals}
        aware = isinstance(parts.strategy, AsyncStrategy)
        updates = []
        for rep in ctx.accepted:
            assert rep.delta is not None
            v = version[rep.client_id]
            s = float(staleness_weight((ctx.round_idx - 1) - v, r.staleness, r.staleness_a,
                                       r.staleness_b))  # fmt: skip
            delta = rep.delta if aware else rep.delta * s
            updates.append(
                ClientUpdate(
                    rep.client_id,
                    delta,
                    rep.num_samples,
                    staleness_weight=s if aware else 1.0,
                    base=self.flow.base_params(v),
                )
            )
        st.global_params = parts.strategy.aggregate(st.global_params, updates)
