"""Asynchronous serving's side of the gRPC server (``engine.mode = "async"``): the servicer
takes each update as it comes, with the synchronous server's checks, tokens and TLS, and
settles it at once, where a round would wait for its close: the task leaves the open tasks,
an accepted update is stored (``pending.PendingStore``) before its client hears "accepted",
and the report joins the queue the async loop's server steps take from
(``live_flow.LiveFlow``).

What differs from a round:

- the norm bound's reference is the last accepted updates' norms (a sliding window), not a
  round's: an update is judged against it on arrival and never waits for others;
- a duplicate upload of a task already settled, or an upload of a task the server does not
  know (one sent out before a restart), is refused: none is applied twice;
- the clock is real: a task's start and arrival are seconds since the run's start."""

from __future__ import annotations

import logging
import statistics
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

from greenfl.clients.transport import Completion, ProgressFn, Task
from greenfl.compression.base import Codec
from greenfl.core.errors import LedgerError, TransportError
from greenfl.core.messages import ClientReport
from greenfl.deploy import greenfl_pb2 as pb
from greenfl.deploy.security import TlsFiles
from greenfl.deploy.server.checks import UpdateRules, as_rejected
from greenfl.deploy.server.pending import PendingStore
from greenfl.deploy.server.plausible import MIN_COHORT_FOR_MEDIAN, RoundModel
from greenfl.deploy.server.quarantine import Quarantine
from greenfl.deploy.server.rounds import cancel_task, failed_report
from greenfl.deploy.server.servicer import FederationServicer, ModelInput
from greenfl.deploy.server.sessions import Pending, Session, apply_joins
from greenfl.deploy.server.settings import DeploySettings
from greenfl.deploy.server.transport import GrpcTransport
from greenfl.engine.async_flow import InFlight
from greenfl.fleet.population import Population

log = logging.getLogger("greenfl.serve")


class RunClock:
    """Seconds since the run's start (a Unix time, kept in the pending store so that a
    resumed run's clock goes on from the first start). Never goes back."""

    def __init__(self, start_unix: float) -> None:
        self.start_unix = start_unix
        self._last_s = 0.0

    def now_s(self) -> float:
        self._last_s = max(self._last_s, time.time() - self.start_unix)
        return self._last_s

    def floor(self, at_least_s: float) -> None:
        """From now on at least ``at_least_s`` (a resumed run's last known time)."""
        self._last_s = max(self._last_s, at_least_s)


@dataclass(frozen=True)
class Settled:
    """A task's report, settled: its sequence number in the pending store (None: not
    stored, as nothing but an accepted update is), its task and flight (``finish_s``: when
    the report was settled)."""

    seq: int | None
    task_id: str
    flight: InFlight
    report: ClientReport


class AsyncServicer(FederationServicer):
    """The servicer of an asynchronous run. ``flights``, ``sent_at`` and ``arrivals`` are
    guarded by ``cond``, like everything of the base's."""

    def __init__(
        self,
        settings: DeploySettings,
        population: Population,
        rules: UpdateRules,
        token: str | None,
        model_input: ModelInput | None,
        store: PendingStore,
        clock: RunClock,
        norm_window: int,
    ) -> None:
        super().__init__(settings, population, rules, token, model_input, None)
        self.store = store
        self.clock = clock
        self.flights: dict[int, InFlight] = {}  # tasks out, by client
        self.sent_at: dict[int, float] = {}  # monotonic time each task went out
        self.arrivals: deque[Settled] = deque()  # settled, in order, not yet in a step
        self._norm_window: deque[float] = deque(maxlen=max(norm_window, MIN_COHORT_FOR_MEDIAN))
        self._withdrawn = False  # the run is over: no task is open

    # ---- the loop's side (its thread, lock held) ------------------------------------
    def launch(self, msg: pb.Task, flight: InFlight, model_of: Callable[[int], RoundModel]) -> bool:
        """Send client ``flight.client_id`` the task ``msg``; False if it is not connected
        (or its token was revoked). ``model_of(n)``: the server's model of the task."""
        cid = flight.client_id
        if not self.hand_out(msg, cid, model_of):
            return False
        self.flights[cid] = flight
        self.sent_at[cid] = time.monotonic()
        return True

    def connected(self) -> list[int]:
        """The clients whose task stream is open."""
        return sorted(cid for cid, s in self.by_client.items() if s.open)

    def take_joins(self) -> None:
        """The joins since the last call, into the population (between server steps)."""
        apply_joins(self.population, self._entry_overrides, self._sample_overrides)

    def declared(self) -> tuple[frozenset[int], int]:
        """The connected clients weighing by their own declared size, and the configured
        dataset's largest partition (what ``plausible.bound_round`` caps them by)."""
        own = frozenset(cid for cid, s in self.by_client.items() if s.num_samples > 0)
        sizes = self._partition_sizes
        return own, int(sizes.max()) if sizes.size else 0

    def expire(self, timeout_s: float) -> None:
        """Tasks out longer than ``timeout_s`` fail (timed out), and their clients are told
        to stop."""
        now = time.monotonic()
        for cid, at in list(self.sent_at.items()):
            p = self._pending.get(cid)
            if p is None or now - at < timeout_s:
                continue
            reason = f"timeout: no update within {timeout_s:g} s"
            log.warning("client %d (model version %d): %s", cid, p.round_idx - 1, reason)
            n = int(self.population.num_samples[cid])
            p.report, p.answered_at = failed_report(cid, n, p.bytes_down, reason), now
            cancel_task(self.sessions.get(p.session_id), p)
            self._settled(cid, p)
        self.cond.notify_all()

    def withdraw_all(self, reason: str) -> None:
        """The run is over: every task out is withdrawn, and an update arriving for one
        is refused (it could no longer be applied)."""
        with self.cond:
            self._withdrawn = True
            for cid, p in list(self._pending.items()):
                cancel_task(self.sessions.get(p.session_id), p)
                self._closed[cid] = p
            self._pending.clear()
            self.flights.clear()
            self.sent_at.clear()
            self.cond.notify_all()

    # ---- settling (gRPC threads and the loop's, lock held) ---------------------------
    def _settled(self, cid: int, pending: Pending) -> None:
        """The task leaves the open tasks; an accepted update is stored, committed, before
        the client's acknowledgement (a store that cannot take it fails the update, and the
        acknowledgement says so); the report joins the arrivals."""
        flight = self.flights.pop(cid, None)
        self.sent_at.pop(cid, None)
        if self._pending.get(cid) is pending:
            del self._pending[cid]
        self._closed[cid] = pending  # to answer a duplicate upload of it
        report = pending.report
        if flight is None or report is None:
            return
        arrived = replace(flight, finish_s=max(self.clock.now_s(), flight.start_s))
        seq = None
        if report.status == "completed":
            try:
                seq = self.store.add(
                    pending.task_id, flight.version, flight.start_s, arrived.finish_s, report
                )
            except LedgerError as exc:
                log.error("client %d: accepted update not stored: %s", cid, exc)
                report = report._replace(
                    status="failed", reason=f"the server could not store the update: {exc}",
                    delta=None,
                )  # fmt: skip
                pending.report = report
            else:
                if pending.norm is not None:
                    self._norm_window.append(pending.norm)
        self.arrivals.append(Settled(seq, pending.task_id, arrived, report))

    def _fail_pending(self, sess: Session, reason: str) -> None:
        """(lock held) The session's task, if any, fails, and is settled at once."""
        p = self._pending.get(sess.client_id)
        super()._fail_pending(sess, reason)
        if p is not None and p.report is not None and self._pending.get(sess.client_id) is p:
            self._settled(sess.client_id, p)

    def _norm_judged(self, pending: Pending, report: ClientReport) -> ClientReport | None:
        """(lock held) ``report``, rejected if its norm exceeds ``norm_bound_factor`` times
        the median of the last accepted updates' norms and its own (with fewer than
        MIN_COHORT_FOR_MEDIAN of them: accepted). Nothing waits: there is no round."""
        factor = self._norms.factor
        if factor is None or report.delta is None:
            return report
        norm = float(report.delta.norm())
        ref = [*self._norm_window, norm]
        if len(ref) >= MIN_COHORT_FOR_MEDIAN:
            median = statistics.median(ref)
            if median > 0 and norm > factor * median:
                why = (
                    f"update norm {norm:.4g} exceeds {factor:g}x the median {median:.4g} of "
                    f"the last {len(ref) - 1} accepted updates' and its own"
                )
                return as_rejected(report, why, pending.model, pending.flag)
        pending.norm = norm
        return report

    def _not_taken(self, cid: int, req: pb.Update) -> pb.Ack:
        """(lock held) A duplicate upload, or one of a task the server does not know."""
        last = self._closed.get(cid)
        if last is not None and last.task_id == req.task_id:
            reason = "duplicate: this task's update was already taken"
            if self._withdrawn and last.report is None:
                reason = "the run is over: its tasks were withdrawn"
        else:
            reason = "no open task with this id (the server restarted, or withdrew it)"
        self._refusals.warning(f"late {cid}", "update of client %d not taken: %s", cid, reason)
        return pb.Ack(accepted=False, reason=reason)


class AsyncTransport(GrpcTransport):
    """The gRPC server of an asynchronous run: listening, tokens, TLS and the update checks
    are GrpcTransport's; tasks go out through ``live_flow.LiveFlow``, not ``dispatch``.
    ``attach`` hands it the run's pending store before it starts."""

    def __init__(
        self,
        settings: DeploySettings,
        codec: Codec,
        address: str,
        token: str | None = None,
        tls: TlsFiles | None = None,
        norm_window: int = 10,
    ) -> None:
        super().__init__(settings, codec, address, token, tls, None)
        self.norm_window = norm_window
        self.store: PendingStore | None = None
        self.clock: RunClock | None = None

    def attach(self, store: PendingStore) -> None:
        self.store = store
        self.clock = RunClock(store.run_start_unix())

    def _new_servicer(
        self, population: Population, rules: UpdateRules, model_input: ModelInput | None
    ) -> FederationServicer:
        if self.store is None or self.clock is None:
            raise TransportError("AsyncTransport.attach(store) was not called")
        s, n = self.settings, self.norm_window
        return AsyncServicer(s, population, rules, self.token, model_input, self.store,
                             self.clock, n)  # fmt: skip

    @property
    def hub(self) -> AsyncServicer:
        hub = self._hub
        assert isinstance(hub, AsyncServicer)
        return hub

    @property
    def quarantine(self) -> Quarantine:
        return self._quarantine

    def message(self, task: Task) -> pb.Task:
        """The FIT task for ``task`` (its model version's encoding shared by its tasks)."""
        return self._message(task)

    def model_of(self, task: Task) -> Callable[[int], RoundModel]:
        """The server's model of ``task``, for the samples its client's update weighs."""
        return self._model_of(task)

    def dispatch(self, task: Task) -> None:
        raise TransportError("asynchronous serving sends tasks through its flow (LiveFlow)")

    def collect(
        self, until_s: float | None = None, progress: ProgressFn | None = None
    ) -> list[Completion]:
        raise TransportError("asynchronous serving takes updates through its flow (LiveFlow)")

    def close(self, reason: str = "the run is over") -> None:
        """The run completed: its tasks are withdrawn, the clients told, and the updates
        the committed steps applied leave the store (those accepted after the last step
        stay there: accepted, never applied)."""
        if self.servicer is not None:
            self.hub.withdraw_all(reason)
        super().close(reason)
        if self.store is not None:
            self.store.drop_upto(self.store.applied_seq)
            self.store.close()
