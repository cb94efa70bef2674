"""Asynchronous FL's events on the simulated clock (issue 30): clients dispatched into free
slots, each training from the model version current at its dispatch, their updates
arriving after their modelled download, training and upload, until a server step's buffer
is full.

Time is event-driven: the next event is the earliest arrival, or, with slots left free
(nobody eligible, no check-in yet, or the carbon-aware throttle holding back), a wake-up
to look again. Who is eligible is drawn from the fleet's availability model at most every
``async.checkin_interval_s``. Under production timing
(greenfl.scheduling.phases) devices check in as pace steering lets them, no device more
often than every ``fleet.checkin_interval_s``: E eligible devices bring E / interval
check-ins a second, and a free slot waits for the next one; each dispatched client then
spends the configuration phase (``fleet.configuration_s``) before its work starts.
A client is busy from its dispatch until the server step that takes its update: it is
not dispatched twice at once, nor twice into one buffer.

Training is real and lazy: a dispatched task is queued on the transport, and when an
arrival's update is needed every queued task trains at once, so tasks dispatched from one
model version train together (the vectorised trainer's batch)."""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from greenfl.clients.transport import Completion, Task
from greenfl.core.errors import NoClientsError
from greenfl.engine.parts import Live, RunParts
from greenfl.engine.settings import AsyncRules
from greenfl.engine.steps import pick_clients
from greenfl.fleet.population import available

# A world in which nobody becomes eligible for this long is a mistake, not a wait.
MAX_IDLE_S = 30 * 86_400.0


@dataclass(frozen=True)
class InFlight:
    """A dispatched task: its client, the model version it trains from, when it started,
    and when its update is planned to arrive (the modelled duration); or, for a client that
    drops out (``fleet.dropout_prob``), when it drops, its work until then counted."""

    client_id: int
    version: int
    start_s: float
    finish_s: float
    dropped: bool = False


@dataclass(frozen=True)
class Arrival:
    """An update that has arrived: the task's completion and its flight."""

    completion: Completion
    flight: InFlight


class AsyncFlow:
    """The slots, the event queue and the versions of the model still being trained from.
    ``version`` is the number of server steps applied (the run's round)."""

    def __init__(self, parts: RunParts, live: Live, rules: AsyncRules) -> None:
        self.parts = parts
        self.live = live
        self.rules = rules
        n = parts.population.size
        self.busy = np.zeros(n, dtype=bool)
        self.flights: dict[int, InFlight] = {}
        self._heap: list[tuple[float, int, int]] = []  # (finish_s, seq, client)
        self._seq = 0
        self._trained: dict[int, Completion] = {}
        self._params: dict[int, torch.Tensor] = {}  # version -> the model, while in flight
        self._avail = np.zeros(0, dtype=np.int64)
        self._avail_at = -math.inf
        self._wake_s: float | None = None
        self._credit = 0.0  # check-ins arrived and not yet dispatched (pace steering)
        self._credit_at = live.state.now_s
        self.now_s = live.state.now_s

    @property
    def version(self) -> int:
        return self.live.state.round

    # ---- one server step's buffer ---------------------------------------------------
    def gather(self, k: int) -> list[Arrival]:
        """Run the events until ``k`` updates have arrived; they are the step's buffer,
        in arrival order, with the clients that dropped out meanwhile (no update, their
        work counted). The clock stands at the last arrival."""
        buffer: list[Arrival] = []
        updates = 0
        idle_from = self.now_s
        while updates < k:
            self._fill()
            nxt = self._heap[0][0] if self._heap else math.inf
            wake = self._wake_s if self._wake_s is not None else math.inf
            if math.isinf(nxt) and math.isinf(wake):
                wake = self.now_s + self.rules.checkin_interval_s
            if min(nxt, wake) - idle_from > MAX_IDLE_S:
                raise NoClientsError(
                    f"no client was eligible for {MAX_IDLE_S / 86_400:g} simulated days "
                    f"(from t = {idle_from:.0f} s): check fleet.eligibility and the fleet"
                )
            if wake < nxt:
                self.now_s = max(self.now_s, wake)
                self._wake_s = None
                continue
            _, _, cid = heapq.heappop(self._heap)
            done = self._completion(cid)
            flight = self.flights[cid]
            late = done.finish_s > flight.finish_s + 1e-9 and done.finish_s > self.now_s
            if late and not flight.dropped:
                # its real report took longer than planned: it arrives later
                self.flights[cid] = replace(flight, finish_s=done.finish_s)
                heapq.heappush(self._heap, (done.finish_s, self._next_seq(), cid))
                continue
            self.now_s = max(self.now_s, flight.finish_s)
            del self.flights[cid]
            buffer.append(Arrival(done, flight))
            updates += not flight.dropped
            idle_from = self.now_s
        return buffer

    def settle(self, arrivals: list[Arrival], end_s: float) -> None:
        """After the step that took ``arrivals`` ended at ``end_s``: their clients may be
        dispatched again, from the new model, once the server has made it."""
        for a in arrivals:
            self.busy[a.flight.client_id] = False
        self.now_s = max(self.now_s, end_s)
        self._release_versions()

    @property
    def eligible_count(self) -> int:
        """Clients in the last draw of who is eligible."""
        return len(self._avail)

    def base_params(self, version: int) -> torch.Tensor | None:
        return self._params.get(version)

    # ---- dispatch -------------------------------------------------------------------
    def _fill(self) -> None:
        """Dispatch into the free slots, as many as there are eligible clients (the
        carbon-aware throttle may hold some slots back until a wake-up)."""
        free = self.rules.concurrency - len(self.flights)
        if free <= 0:
            return
        cands = self._candidates()
        if len(cands) == 0:
            self._set_wake(self.rules.checkin_interval_s)
            return
        free = min(free, self._checkins(len(cands)))
        chosen: list[int] = []
        if free > 0 and self.rules.carbon_aware:
            floor_ids, cands = self._throttle(cands)
            chosen.extend(floor_ids[:free])
            free -= len(chosen)
            cands = cands[~np.isin(cands, np.asarray(chosen, dtype=np.int64))]
        if free > 0 and len(cands):
            chosen.extend(self._select(cands, free))
        if len(chosen) < self.rules.concurrency - len(self.flights):
            # slots left free: look again at the next draw of who is eligible, or sooner
            wait = self.rules.wake_s if self.rules.carbon_aware else self.rules.checkin_interval_s
            self._set_wake(wait)
        if chosen:
            self._credit = max(self._credit - len(chosen), 0.0)
            self._dispatch(np.asarray(chosen, dtype=np.int64))

    def _checkins(self, eligible: int) -> int:
        """How many devices have checked in since the last dispatch, at pace steering's
        rate (every eligible device at most once per ``checkin_interval_s``); unlimited
        without production timing. Sets a wake-up for the next one if none has."""
        interval_s = self.parts.settings.world.timing.checkin_interval_s
        if interval_s <= 0:
            return self.rules.concurrency
        rate = eligible / interval_s
        self._credit = min(
            self._credit + (self.now_s - self._credit_at) * rate, float(self.rules.concurrency)
        )
        self._credit_at = self.now_s
        # (a hair of tolerance: the credit accrued up to a wake-up is 1 up to rounding)
        whole = int(self._credit + 1e-9)
        if whole < 1 and rate > 0:
            self._set_wake(max((1 - self._credit) / rate, 1e-3))
        return whole

    def _candidates(self) -> np.ndarray:
        if self.now_s - self._avail_at >= self.rules.checkin_interval_s:
            clock = self.live.clock
            clock.now_s = self.now_s
            self._avail = available(
                self.parts.population,
                clock.now_utc,
                self.parts.settings.world.availability,
                self.live.rngs["availability"],
            )
            self._avail_at = self.now_s
        avail = self._avail
        cap = self.rules.max_candidates
        if len(avail) <= cap:
            return avail[~self.busy[avail]]
        # A server sees the devices checking in, not the whole eligible population: a
        # random pool of them, drawn without a pass over all (few are busy at a time).
        rng = self.live.rngs["availability"]
        pool = np.unique(rng.integers(0, len(avail), size=cap + cap // 4 + 16))
        picked = avail[pool]
        return picked[~self.busy[picked]][:cap]

    def _select(self, cands: np.ndarray, k: int) -> list[int]:
        k = min(k, len(cands))
        epochs = self.parts.settings.round.local_epochs
        picked = pick_clients(self.parts, self.live, cands, k, self.version + 1, self.now_s, epochs)
        return picked.tolist()

    def _throttle(self, cands: np.ndarray) -> tuple[list[int], np.ndarray]:
        """(the clients that keep the in-flight floor, picked as without the throttle so
        that every region keeps a share; the candidates clean now). A candidate is clean
        now when its grid's forecast intensity is (when) within ``carbon_tolerance`` of
        the lowest it will be over the next ``carbon_slack_s``, and (where) at most the
        ``carbon_quantile`` of the intensities of the candidates checked in now."""
        r, forecast = self.rules, self.parts.forecast
        assert forecast is not None
        region = self.parts.population.region[cands]
        regions, at = np.unique(region, return_inverse=True)
        step_s = min(r.wake_s, max(r.carbon_slack_s, 1.0))
        starts = self.now_s + np.arange(0.0, r.carbon_slack_s + 1e-9, step_s)
        rr = np.repeat(regions, len(starts))
        ss = np.tile(starts, len(regions))
        ci = np.asarray(forecast.mean(rr, ss, ss + step_s)).reshape(len(regions), len(starts))
        now_ci, best_ci = ci[:, 0], ci.min(axis=1)
        cand_ci = now_ci[at]
        when = now_ci <= best_ci * (1 + r.carbon_tolerance)
        where = now_ci <= np.quantile(cand_ci, r.carbon_quantile)
        floor = math.ceil(r.min_concurrency_share * r.concurrency) - len(self.flights)
        floor_ids = self._select(cands, floor) if floor > 0 else []
        return floor_ids, cands[(when & where)[at]]

    def _dispatch(self, clients: np.ndarray) -> None:
        parts, st = self.parts, self.live.state
        epochs = parts.settings.round.local_epochs
        durations_s = parts.costs.durations_s(clients, epochs)
        v = self.version
        params = self._params.setdefault(v, st.global_params)
        # The session's configuration phase comes before the work (its download included).
        work_s = self.now_s + parts.settings.world.timing.configuration_s
        instructions = parts.settings.round.instructions()
        # Who drops out, and when in its work: drawn at dispatch, as a device's fate is.
        rng, p = self.live.rngs["dropout"], parts.settings.world.dropout_prob
        n = len(clients)
        dropped = rng.random(n) < p if p > 0 else np.zeros(n, dtype=bool)
        share = rng.random(n) if p > 0 else np.ones(n)
        dur = np.where(dropped, share * durations_s, durations_s)
        for cid, d, drop in zip(clients.tolist(), dur.tolist(), dropped.tolist(), strict=True):
            flight = InFlight(cid, v, work_s, work_s + float(d), bool(drop))
            self._launch(flight, params, instructions)

    def _launch(self, flight: InFlight, params: torch.Tensor, instructions: Any) -> None:
        cid = flight.client_id
        self.busy[cid] = True
        self.flights[cid] = flight
        heapq.heappush(self._heap, (flight.finish_s, self._next_seq(), cid))
        # The step the work is for names the task: it seeds the client's training.
        task = Task(flight.version + 1, cid, params, instructions, flight.start_s)
        self.parts.transport.dispatch(task)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _set_wake(self, after_s: float) -> None:
        at = self.now_s + after_s
        self._wake_s = at if self._wake_s is None else min(self._wake_s, at)

    def _completion(self, cid: int) -> Completion:
        if cid not in self._trained:
            for c in self.parts.transport.collect(None):
                self._trained[c.task.client_id] = c
        return self._trained.pop(cid)

    def _release_versions(self) -> None:
        """Forget the models no task in flight trains from (the current one stays)."""
        live = {f.version for f in self.flights.values()} | {self.version}
        for v in [v for v in self._params if v not in live]:
            del self._params[v]

    # ---- snapshot ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """What continues the flow on resume: the tasks in flight (their updates are
        trained again, from the same model and seed), the models they train from, the last
        draw of who is eligible, and the clock."""
        fl = sorted(self.flights.values(), key=lambda f: (f.finish_s, f.client_id))
        versions = sorted({f.version for f in fl})
        return {
            "now_s": self.now_s,
            "client": np.array([f.client_id for f in fl], dtype=np.int64),
            "version": np.array([f.version for f in fl], dtype=np.int64),
            "start_s": np.array([f.start_s for f in fl], dtype=np.float64),
            "finish_s": np.array([f.finish_s for f in fl], dtype=np.float64),
            "dropped": np.array([f.dropped for f in fl], dtype=np.int64),
            "versions": np.array(versions, dtype=np.int64),
            **{f"params_{v}": self._params[v] for v in versions},
            "avail": self._avail,
            "avail_at": self._avail_at if math.isfinite(self._avail_at) else None,
            "wake_s": self._wake_s,
            "credit": self._credit,
            "credit_at": self._credit_at,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        self.now_s = float(state["now_s"])
        self._avail = np.asarray(state["avail"], dtype=np.int64)
        at = state.get("avail_at")
        self._avail_at = -math.inf if at is None else float(at)
        wake = state.get("wake_s")
        self._wake_s = None if wake is None else float(wake)
        self._credit = float(state.get("credit", 0.0))
        self._credit_at = float(state.get("credit_at", self.now_s))
        for v in np.asarray(state["versions"]).tolist():
            self._params[int(v)] = torch.as_tensor(state[f"params_{v}"])
        instructions = self.parts.settings.round.instructions()
        keys = ("client", "version", "start_s", "finish_s", "dropped")
        cols = zip(*(np.asarray(state[k]).tolist() for k in keys), strict=True)
        for cid, v, start_s, finish_s, dropped in cols:
            flight = InFlight(int(cid), int(v), float(start_s), float(finish_s), bool(dropped))
            self._launch(flight, self._params[int(v)], instructions)
