"""The round as named steps: plan, select, fit, account, aggregate, evaluate, server,
commit. Each takes the run's parts, its live state and the round's context, and fills in
what it decides; ``ROUND_STEPS`` is their order.

plan      the round's parameters (an adaptive policy's pick), and how long it waits for a
          lower-carbon window: before anyone is picked, since who is available depends on
          the hour
select    the available clients, and the cohort the selector picks among them
fit       the instructions (the strategy's, with late clients' step caps), and real
          training through the client transport
account   each client's time, energy and carbon, with the deadline and drop-outs, and the
          reports to aggregate
aggregate the new global model
evaluate  its test accuracy and loss (and on clients' own data, every eval.every rounds),
          and the server's window over both: modelled from counted FLOPs, or measured
server    the server's footprint of the round
commit    the loop's state, what the policies learn, the observers, the ledger row and
          the round's record"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial

import numpy as np

from greenfl.accounting.cohort import account_cohort, unaccounted
from greenfl.accounting.server import ServerCost, idle_server, server_cost
from greenfl.clients.transport import FitProgress, Task
from greenfl.core.messages import ClientReport, FitInstructions
from greenfl.engine.observers import observe_all, round_view
from greenfl.engine.partial import NO_PARTIAL_WORK, PartialWork, plan_partial_work, updates_of
from greenfl.engine.parts import Live, RunParts
from greenfl.engine.records import RoundRecord
from greenfl.engine.round import RoundContext
from greenfl.fleet.population import available
from greenfl.ledger.rows import ColumnRows, Constant, DeferredRows
from greenfl.ledger.schema import AGGREGATED
from greenfl.models.evaluate import evaluate as evaluate_model
from greenfl.selection.base import LearningSelector, SelectionContext

Step = Callable[[RunParts, Live, RoundContext], None]


def plan(parts: RunParts, live: Live, ctx: RoundContext) -> None:
    now_s = live.state.now_s
    ctx.plan = parts.round_params.plan(live.rngs["adapt"])
    if parts.waiting is not None:
        ctx.wait_s = parts.waiting.wait_s(now_s, ctx.plan.clients_per_round, ctx.plan.local_epochs)
    source = parts.sources[parts.server_region]
    ctx.idle_j, ctx.idle_g = idle_server(parts.fleet, source, now_s, ctx.wait_s)
    live.clock.advance(ctx.wait_s)
    ctx.start_s = live.clock.now_s


def select(parts: RunParts, live: Live, ctx: RoundContext) -> None:
    """k x (1 + over-selection) of the available clients."""
    world, pop = parts.settings.world, parts.population
    k_ask = min(pop.size, math.ceil(ctx.k * (1 + world.over_selection)))
    candidates = available(pop, live.clock.now_utc, world.availability, live.rngs["availability"])
    connected = parts.transport.available_clients()
    if connected is not None:
        # A deployment selects only among the clients connected now (this may wait).
        candidates = np.intersect1d(candidates, connected)
    # The selection phase (check-in window) and the configuration phase come before the
    # clients' work: its intensity, the estimates and the accounting start after them.
    timing = world.timing
    ctx.checkin_s = timing.checkin_s(k_ask, len(candidates))
    ctx.config_s = timing.configuration_s
    ctx.work_start_s = ctx.start_s + ctx.phases_s
    assert ctx.plan is not None
    cohort = pick_clients(
        parts,
        live,
        candidates,
        k_ask,
        ctx.round_idx,
        ctx.work_start_s,
        ctx.plan.local_epochs,
        ctx.plan.width_cap,
    )
    ctx.cohort = np.asarray(cohort, dtype=np.int64)
    ctx.rows = parts.costs.rows(ctx.cohort, ctx.work_start_s, ctx.plan.local_epochs)
    ctx.num_available = len(candidates)


def pick_clients(
    parts: RunParts,
    live: Live,
    candidates: np.ndarray,
    k: int,
    round_idx: int,
    now_s: float,
    local_epochs: int,
    width_cap: float = 1.0,
) -> np.ndarray:
    """``k`` of ``candidates`` as the selector picks them at ``now_s``, with the cost
    estimates it asks for: a round's cohort, or an async run's next clients. With
    sub-models, each candidate is priced at the width it would train (``width_cap``: the
    round's widest)."""
    st = live.state
    sel = SelectionContext(
        round_idx=round_idx,
        now_s=now_s,
        population=parts.population,
        participation=st.participation,
        last_selected=st.last_selected,
        last_loss=st.last_loss,
    )
    if parts.selector.needs_estimates:
        est, _ = parts.costs.estimate(candidates, now_s, local_epochs, round_idx, width_cap)
        sel.est_energy_j, sel.est_carbon_g = est.energy_j, est.carbon_g
        sel.est_duration_s = est.duration_s
    return np.asarray(
        parts.selector.select(candidates, k, sel, live.rngs["selection"]), dtype=np.int64
    )


def fit(parts: RunParts, live: Live, ctx: RoundContext) -> None:
    assert ctx.plan is not None
    s = parts.settings
    base = s.round.instructions().with_(
        local_epochs=ctx.plan.local_epochs, batch_size=ctx.plan.batch_size
    )
    instructions = parts.strategy.configure(ctx.round_idx, base)
    deadline_s = s.world.deadline_s
    widths = None
    if parts.costs.submodel is not None:
        widths = parts.costs.choose_widths(
            ctx.cohort,
            ctx.rows,
            ctx.work_start_s,
            ctx.plan.local_epochs,
            ctx.round_idx,
            ctx.plan.width_cap,
        )
    if s.world.aggregate_partial and deadline_s is not None and s.accounting:
        if widths is None:
            ctx.work = plan_partial_work(
                parts.costs, deadline_s, ctx.cohort, ctx.rows, instructions
            )
        else:
            ctx.work = _partial_work_at(parts, deadline_s, ctx, instructions, widths)
    else:
        ctx.work = NO_PARTIAL_WORK
    # A deployment may close the round once k updates are in (over-selection).
    parts.transport.expect_updates(min(ctx.k, len(ctx.cohort)))
    ctx.sent = ctx.work.instruct(instructions)
    if widths is not None:
        ctx.widths = widths
    precisions = _precisions(parts, ctx.rows)
    if widths is not None or precisions is not None:
        ctx.reports = _fit_each(parts, live, ctx, ctx.sent, widths, precisions)
        return
    ctx.reports = parts.transport.fit(
        ctx.round_idx,
        ctx.cohort.tolist(),
        live.state.global_params,
        ctx.sent,
        progress=partial(_progress, parts),
        start_s=ctx.work_start_s,
    )


def _partial_work_at(
    parts: RunParts,
    deadline_s: float,
    ctx: RoundContext,
    instructions: FitInstructions,
    widths: np.ndarray,
) -> PartialWork:
    """``plan_partial_work`` with each client's step cap priced at its sub-model width."""
    costs = parts.costs
    caps = costs.partial_steps(
        ctx.cohort,
        ctx.rows,
        instructions.local_epochs,
        instructions.batch_size,
        deadline_s,
        widths=widths,
    )
    if not caps:
        return NO_PARTIAL_WORK
    ids = np.fromiter(caps, dtype=np.int64, count=len(caps))
    full = instructions.steps(costs.population.num_samples[ids])
    fraction = {int(c): caps[int(c)] / int(f) for c, f in zip(ids, full, strict=True)}
    return PartialWork(caps, fraction)


def _precisions(parts: RunParts, rows: np.ndarray) -> list[str] | None:
    """Each client's arithmetic precision: its profile row's (``train.precision`` where its
    device declares it, else fp32), whose rates the round is charged at. None: all fp32."""
    names = parts.costs.table.precision
    out = [names[r] for r in rows.tolist()]
    return out if any(p != "fp32" for p in out) else None


def _fit_each(
    parts: RunParts,
    live: Live,
    ctx: RoundContext,
    sent: FitInstructions,
    widths: np.ndarray | None,
    precisions: list[str] | None,
) -> list[ClientReport]:
    """The round's training with each client at its sub-model width and in its precision:
    its task's instructions carry both. Dispatched widest first, then by precision, so a
    transport that trains a run of equal instructions at once (the in-process one) gets
    one batch per (width, precision); reports come back in cohort order."""
    transport, params = parts.transport, live.state.global_params
    n = len(ctx.cohort)
    w = widths.tolist() if widths is not None else [1.0] * n
    p = precisions if precisions is not None else ["fp32"] * n
    for i in sorted(range(n), key=lambda i: (-w[i], p[i])):
        cid = int(ctx.cohort[i])
        instructions = sent.with_(width=float(w[i]), precision=p[i])
        transport.dispatch(Task(ctx.round_idx, cid, params, instructions, ctx.work_start_s))
    done = {c.task.client_id: c.report for c in transport.collect(None, partial(_progress, parts))}
    return [done[int(cid)] for cid in ctx.cohort.tolist()]


def _progress(parts: RunParts, progress: FitProgress) -> None:
    for obs in parts.observers:
        obs.on_progress(progress)


def account(parts: RunParts, live: Live, ctx: RoundContext) -> None:
    s = parts.settings
    if s.accounting:
        ctx.account = account_cohort(
            ctx.round_idx,
            ctx.work_start_s,
            ctx.reports,
            parts.population,
            parts.costs.table,
            parts.sources,
            min(ctx.k, len(ctx.reports)),
            s.world.deadline_s,
            s.world.dropout_prob,
            live.rngs["dropout"],
            rows=ctx.rows,
            cohort=ctx.cohort,
            partial_ids=ctx.work.ids,
        )
        statuses = ctx.account.status
        if parts.costs.submodel is not None:
            _record_widths(parts, ctx)
        if parts.costs.sparse is not None:
            _record_density(parts, ctx)
    else:
        # Without accounting there is no modelled time: no deadline, no drop-outs (the
        # config refuses those settings), every completed report is aggregated.
        ctx.account = unaccounted()
        statuses = [r.status for r in ctx.reports]
    ctx.accepted = [r for r, st in zip(ctx.reports, statuses, strict=True) if st in AGGREGATED]


def _record_widths(parts: RunParts, ctx: RoundContext) -> None:
    """The ledger's ``width`` of each client: the width it was asked to train (reports
    come back in cohort order, as the rows are)."""
    assert ctx.account is not None and ctx.widths is not None
    rows = ctx.account.rows
    table = rows.rows() if isinstance(rows, DeferredRows) else rows
    assert isinstance(table, ColumnRows)  # what account_cohort builds
    by_client = dict(zip(ctx.cohort.tolist(), ctx.widths.tolist(), strict=True))
    table.columns["width"] = np.array([by_client[int(c)] for c in table.column("client_id")])


def _record_density(parts: RunParts, ctx: RoundContext) -> None:
    """The ledger's ``density``: the share of the model's weights the cohort trained and
    sent under the round's sparsity mask (the server prunes after aggregating)."""
    assert ctx.account is not None and parts.costs.sparse is not None
    rows = ctx.account.rows
    table = rows.rows() if isinstance(rows, DeferredRows) else rows
    assert isinstance(table, ColumnRows)  # what account_cohort builds
    table.columns["density"] = Constant(parts.costs.sparse.density, len(table))


def aggregate(parts: RunParts, live: Live, ctx: RoundContext) -> None:
    """The new global model. With the server measured, its meter's window opens here and
    closes after the evaluation."""
    ctx.server_measured = parts.server_work is None
    if ctx.server_measured:
        ctx.meter_token = parts.meter.begin()  # until evaluate ends the window
    if ctx.accepted:
        st = live.state
        st.global_params = parts.strategy.aggregate(
            st.global_params, updates_of(ctx.accepted, ctx.work)
        )


def evaluate(parts: RunParts, live: Live, ctx: RoundContext) -> None:
    params = live.state.global_params
    ctx.accuracy, ctx.loss = evaluate_model(parts.model, params, live.test_data)
    ctx.client_acc = parts.client_eval.maybe(ctx.round_idx, params)
    if parts.server_work is None:
        ctx.measured = parts.meter.end(ctx.meter_token)
        ctx.server_flops = 0.0
    else:
        ctx.measured, ctx.server_flops = parts.server_work.measurement(
            parts.strategy, len(ctx.accepted)
        )


def server(parts: RunParts, live: Live, ctx: RoundContext) -> None:
    """The server's footprint of the round (``server_cost``); none without accounting."""
    assert ctx.account is not None and ctx.measured is not None
    # The server's active work starts when the round closes: after the check-in and
    # configuration phases and the reporting window.
    close_s, measured = ctx.phases_s + ctx.account.close_s, ctx.measured
    if parts.settings.accounting:
        ctx.server = server_cost(
            parts.fleet,
            parts.sources,
            parts.server_region,
            ctx.start_s,
            close_s,
            measured,
            ctx.idle_j,
            ctx.idle_g,
        )
    else:
        at_s = ctx.start_s + close_s + measured.elapsed_s
        ctx.server = ServerCost(measured.elapsed_s, 0.0, ctx.idle_j, ctx.idle_g, at_s, ctx.idle_j)


def commit(parts: RunParts, live: Live, ctx: RoundContext) -> None:
    """The round's record and what the observers make of it (their ledger columns, metrics
    and stop), then the state after the round and what the policies learn from it. The
    observers run before the state moves on: a round they fail (or Ctrl-C cuts) leaves the
    state at the last recorded round, as the ledger is. The loop writes the row next, then
    tells observers the round is recorded (``on_round_end``)."""
    assert ctx.account is not None and ctx.server is not None and ctx.plan is not None
    assert ctx.sent is not None
    st, acct, srv = live.state, ctx.account, ctx.server
    ctx.round_carbon_g = acct.carbon_g + srv.carbon_g
    energy_j = acct.energy_j + srv.energy_j
    ctx.wall_s = time.perf_counter() - ctx.wall0
    record = RoundRecord(
        round=ctx.round_idx,
        accuracy=ctx.accuracy,
        loss=ctx.loss,
        selected=len(ctx.reports),
        completed=len(ctx.accepted),
        sim_time_s=srv.end_s,
        wall_s=ctx.wall_s,
        energy_j=energy_j,
        carbon_g=ctx.round_carbon_g,
        cum_energy_j=st.cum_energy_j + energy_j,
        cum_carbon_g=st.cum_carbon_g + ctx.round_carbon_g,
        client_accuracy=ctx.client_acc,
    )
    view = round_view(
        record, st.global_params, ctx.num_available, len(ctx.cohort), ctx.accepted, ctx.sent
    )
    ctx.observed = observe_all(parts.observers, view)
    ctx.record = replace(record, probes=ctx.observed.columns, metrics=ctx.observed.metrics)
    acc_before = live.history[-1].accuracy if live.history else initial_accuracy(parts, live)
    ids = np.array([r.client_id for r in ctx.accepted], dtype=np.int64)
    st.participation[ids] += 1
    st.last_selected[ctx.cohort] = ctx.round_idx
    st.last_loss[ids] = [r.loss for r in ctx.accepted]
    st.round = ctx.round_idx
    st.now_s = srv.end_s
    st.cum_energy_j, st.cum_carbon_g = record.cum_energy_j, record.cum_carbon_g
    st.last_round_carbon_g = ctx.round_carbon_g
    st.best_accuracy = max(st.best_accuracy, ctx.accuracy)
    parts.round_params.observe(ctx.plan, acc_before, ctx.accuracy, ctx.round_carbon_g)
    if isinstance(parts.selector, LearningSelector):
        parts.selector.observe(acc_before, ctx.accuracy)
    if parts.waiting is not None:
        parts.waiting.observe_server(srv.energy_j - srv.idle_j)
    live.history.append(ctx.record)


def initial_accuracy(parts: RunParts, live: Live) -> float:
    """The untrained model's accuracy (stored in the ledger at the run's start)."""
    stored = parts.ledger.meta().get("initial_accuracy")
    if stored is not None:
        return float(stored)
    return evaluate_model(parts.model, live.state.global_params, live.test_data)[0]


ROUND_STEPS: tuple[Step, ...] = (plan, select, fit, account, aggregate, evaluate, server, commit)
