"""Asynchronous serving's event flow: what ``greenfl.engine.async_flow.AsyncFlow`` is to a
simulation, on real clients and real time. The async loop (greenfl.engine.async_loop)
calls the same four things, ``gather(k)``, ``settle(arrivals, end_s)``, ``eligible_count``
and ``base_params(version)``, and saves ``state_dict`` with each server step.

- **Dispatch.** Up to ``async.concurrency`` connected clients have a task at once, each
  from the model current when it went out. A client is busy from its task until the server
  step that takes its update (as in simulation: never twice in one buffer); then it gets
  the model that step made, and goes again. Who fills a free slot is the configured
  selector's choice among the idle connected clients. The first task (of the run, and
  after a ``--resume``) waits for ``deploy.min_clients`` connected clients.
- **Arrival.** The servicer settles each update as it comes (``async_hub``): accepted ones
  are stored, committed, before the client's acknowledgement. ``gather`` takes the settled
  reports in the order they came until ``k`` accepted updates are in (the failed and
  rejected ones among them are the step's rows too), or fewer when no task is out and no
  idle connected client is left to send one (fewer clients are connected than ``k``).
- **Durability.** A new model version goes out only once the step that made it is
  committed (``gather`` waits for the ledger first), so no update is ever based on a step
  a crash could lose. The step's snapshot holds ``applied_seq``, the last stored update
  it took: on ``--resume`` the stored updates after it are taken again, and those up to it
  deleted (greenfl.deploy.server.pending).
- **Time** is real: seconds since the run's start (``async_hub.RunClock``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from greenfl.clients.transport import Completion, Task
from greenfl.config import RunConfig
from greenfl.core.errors import TransportError
from greenfl.core.messages import ClientReport
from greenfl.deploy.server.async_hub import AsyncServicer, AsyncTransport, Settled
from greenfl.deploy.server.plausible import bound_round
from greenfl.engine.async_flow import Arrival, InFlight
from greenfl.engine.async_loop import AsyncLoop
from greenfl.engine.observers import RoundObserver
from greenfl.engine.parts import Live, RunParts
from greenfl.engine.settings import AsyncRules
from greenfl.engine.steps import pick_clients
from greenfl.factories import build_loop

log = logging.getLogger("greenfl.serve")

WAIT_STEP_S = 1.0  # the longest the loop sleeps between looks (timeouts, idle clients)


class LiveFlow:
    """The flow of an asynchronous deployment over ``transport`` (started by the run's
    session before the first ``gather``). ``version`` is the number of server steps
    applied (the run's round)."""

    def __init__(
        self, parts: RunParts, live: Live, rules: AsyncRules, transport: AsyncTransport
    ) -> None:
        self.parts = parts
        self.live = live
        self.rules = rules
        self.transport = transport
        self._params: dict[int, torch.Tensor] = {}  # version -> its model, while needed
        self._taken: list[Settled] = []  # the step's buffer, until settled
        self._applied_seq = 0  # the last stored update a step took
        self._reloaded = False
        self._started = False  # the first task went out (after deploy.min_clients joined)
        self._eligible = 0
        self._instructions = parts.settings.round.instructions()

    @property
    def version(self) -> int:
        return self.live.state.round

    @property
    def hub(self) -> AsyncServicer:
        return self.transport.hub

    # ---- one server step's buffer -------------------------------------------------------
    def gather(self, k: int) -> list[Arrival]:
        """Wait until ``k`` accepted updates have come (or no other client could add one),
        keeping the free slots filled meanwhile; they are the step's buffer, with the
        failed and rejected reports that came before the last of them, in arrival order."""
        store = self.transport.store
        assert store is not None, "AsyncTransport.attach(store) was not called"
        # The last step is committed: its applied updates leave the store, and its model
        # may go out.
        self.parts.ledger.flush()
        store.drop_upto(self._applied_seq)
        self._params[self.version] = self.live.state.global_params
        hub, accepted = self.hub, 0
        buffer: list[Settled] = []
        self._taken = buffer  # their clients are busy while the buffer fills
        join_timeout_s = self.transport.settings.join_timeout_s
        idle_since = time.monotonic()
        with hub.cond:
            if not self._reloaded:
                self._reload(hub)
            while True:
                hub.take_joins()
                hub.expire(self.transport.settings.round_timeout_s)
                self._fill(hub)
                while hub.arrivals and accepted < k:
                    item = hub.arrivals.popleft()
                    buffer.append(item)
                    accepted += item.report.status == "completed"
                if accepted >= k or (accepted and self._started and not hub.flights):
                    break  # full, or no other connected client can add to it
                if hub.flights:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > join_timeout_s:
                    have = len(hub.connected())
                    raise TransportError(
                        f"no task could go out for {join_timeout_s:g} s (deploy.join_timeout_s)"
                        f": {have} client(s) connected"
                        + ("" if self._started else f", {self._min_clients()} needed to start")
                    )
                hub.cond.wait(WAIT_STEP_S)
            self._eligible = len(hub.connected())
            declared = hub.declared()
        seqs = [a.seq for a in buffer if a.seq is not None]
        if seqs:
            self._applied_seq = max(seqs)
        s, step = self.transport.settings, self.version + 1
        reports = bound_round([a.report for a in buffer], None, s.sample_bound_factor, *declared)
        self.transport.quarantine.record(step, reports)
        return [self._arrival(a, r) for a, r in zip(buffer, reports, strict=True)]

    def settle(self, arrivals: Sequence[Arrival], end_s: float) -> None:
        """After the step that took ``arrivals``: their clients may go again (from the
        model the step made, once it is committed: the next ``gather``)."""
        self._taken = []
        store = self.transport.store
        assert store is not None
        store.applied_seq = self._applied_seq  # the store drops them at a completed run's end
        with self.hub.cond:
            needed = self._needed_versions(self.hub)
        for v in [v for v in self._params if v not in needed]:
            del self._params[v]

    @property
    def eligible_count(self) -> int:
        """Clients connected at the last step's close."""
        return self._eligible

    def base_params(self, version: int) -> torch.Tensor | None:
        return self._params.get(version)

    # ---- dispatch (lock held) ----------------------------------------------------------
    def _fill(self, hub: AsyncServicer) -> None:
        free = self.rules.concurrency - len(hub.flights)
        if free <= 0:
            return
        connected = hub.connected()
        if not self._started and len(connected) < self._min_clients():
            return
        step = self.version + 1
        quarantine = self.transport.quarantine
        busy = set(hub.flights) | {a.flight.client_id for a in hub.arrivals}
        busy |= {a.flight.client_id for a in self._taken}
        idle = [c for c in connected if c not in busy and quarantine.reason(c, step) is None]
        if not idle:
            return
        chosen = idle if len(idle) <= free else self._select(np.asarray(idle), free)
        params = self._params[self.version]
        for cid in chosen:
            task = Task(step, int(cid), params, self._instructions, self._now_s())
            flight = InFlight(int(cid), self.version, task.start_s, task.start_s)
            if hub.launch(self.transport.message(task), flight, self.transport.model_of(task)):
                self._started = True

    def _select(self, cands: np.ndarray, k: int) -> list[int]:
        """``k`` of the idle clients, as the configured selector picks them."""
        epochs = self.parts.settings.round.local_epochs
        picked = pick_clients(
            self.parts, self.live, cands, k, self.version + 1, self._now_s(), epochs
        )
        return picked.tolist()

    # ---- helpers ------------------------------------------------------------------------
    def _arrival(self, a: Settled, report: ClientReport) -> Arrival:
        f = a.flight
        params = self._params.get(f.version, self.live.state.global_params)
        task = Task(f.version + 1, f.client_id, params, self._instructions, f.start_s)
        return Arrival(Completion(task, report, f.finish_s), f)

    def _reload(self, hub: AsyncServicer) -> None:
        """(lock held; the first step) The stored updates no committed step applied, back
        at the head of the arrivals; the clock from where the run was."""
        store, clock = self.transport.store, self.transport.clock
        assert store is not None and clock is not None
        stored = store.after(self._applied_seq)
        clock.floor(max([self.live.state.now_s, *(s.finish_s for s in stored)]))
        items = [
            Settled(s.seq, s.task_id, InFlight(s.report.client_id, s.version, s.start_s,
                                               s.finish_s), s.report)
            for s in stored
        ]  # fmt: skip
        hub.arrivals.extendleft(reversed(items))
        self._reloaded = True
        if items:
            log.info(
                "resume: %d accepted update(s) not yet applied, taken again (after #%d)",
                len(items),
                self._applied_seq,
            )
        missing = sorted({s.version for s in stored} - set(self._params) - {self.version})
        if missing:  # FedAsync mixes from the base; without it, from the current model
            log.warning("resume: no saved model for version(s) %s", missing)

    def _needed_versions(self, hub: AsyncServicer) -> set[int]:
        """(lock held) The versions a task out or an update not yet applied trained from,
        and the current one."""
        out = {f.version for f in hub.flights.values()}
        out |= {a.flight.version for a in hub.arrivals}
        return out | {self.version}

    def _now_s(self) -> float:
        clock = self.transport.clock
        assert clock is not None
        return clock.now_s()

    def _min_clients(self) -> int:
        return self.transport.settings.min_clients

    # ---- snapshot -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The mark of the stored updates applied so far, and the models that updates still
        to come may be based on (the current one is the snapshot's own)."""
        with self.hub.cond:
            needed = self._needed_versions(self.hub) - {self.version}
        versions = sorted(v for v in needed if v in self._params)
        return {
            "applied_seq": self._applied_seq,
            "versions": np.array(versions, dtype=np.int64),
            **{f"params_{v}": self._params[v] for v in versions},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        self._applied_seq = int(state["applied_seq"])
        for v in np.asarray(state["versions"]).tolist():
            self._params[int(v)] = torch.as_tensor(state[f"params_{v}"])


def build_async_loop(
    cfg: RunConfig,
    out_dir: Path,
    transport: AsyncTransport,
    *,
    resume: bool,
    overwrite: bool,
    observers: Sequence[RoundObserver],
) -> AsyncLoop:
    """``greenfl.factories.build_loop`` for asynchronous serving: the async loop with a
    LiveFlow over ``transport`` in place of the simulated flow (made before any state is
    restored on ``resume``)."""

    def live(parts: RunParts, live_state: Live, rules: AsyncRules) -> LiveFlow:
        return LiveFlow(parts, live_state, rules, transport)

    loop = build_loop(
        cfg,
        out_dir,
        transport=transport,
        overwrite=overwrite,
        resume=resume,
        observers=observers,
        flow_factory=live,
    )
    assert isinstance(loop, AsyncLoop)
    return loop
