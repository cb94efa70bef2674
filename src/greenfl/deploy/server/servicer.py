"""The clients' side of a deployment's server: the gRPC handlers (``Join``, ``Tasks``,
``SubmitUpdate``, ``SecAggSubmit``) and the bookkeeping of the connected clients behind
them: their sessions, admission (``admission.py``: tokens, enrolment, join rates; refusals
logged at a bounded rate), the open round's tasks and the last round's (to answer late
updates), and what the server makes of their updates (``witness.py``, ``norms.py``).

Threads: gRPC runs each call on its own worker thread (a connected client holds one for its
Tasks stream); the round loop's thread comes in through the methods of "the round's side",
called by GrpcTransport. One condition variable, ``cond``, guards all of it (secure
aggregation's rounds share it)."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator

import grpc

from greenfl.clients.validate import PROTOCOL_VERSION
from greenfl.core.errors import TransportError
from greenfl.core.messages import ClientReport
from greenfl.deploy import greenfl_pb2 as pb
from greenfl.deploy import greenfl_pb2_grpc as pb_grpc
from greenfl.deploy.server.admission import Gatekeeper
from greenfl.deploy.server.checks import UpdateRules, as_rejected, judge_update
from greenfl.deploy.server.claims import Observation
from greenfl.deploy.server.listener import session_of
from greenfl.deploy.server.norms import NormBound
from greenfl.deploy.server.plausible import RoundModel
from greenfl.deploy.server.ratelimit import BoundedLog
from greenfl.deploy.server.rounds import (
    ClosedRound,
    accepted_updates,
    cancel_task,
    declared_of,
    failed_report,
    late_reason,
    round_closes,
    unanswered_report,
)
from greenfl.deploy.server.secagg import SecAggOptions, SecAggRounds, keys_of
from greenfl.deploy.server.sessions import Pending, Refusal, Session, apply_joins
from greenfl.deploy.server.settings import DeploySettings
from greenfl.deploy.server.stream import stream_tasks
from greenfl.deploy.server.trust import trust_settings
from greenfl.deploy.server.witness import Witness, ack_of
from greenfl.deploy.wire import enrolled_precisions
from greenfl.fleet.population import Population

log = logging.getLogger("greenfl.serve")

ModelInput = tuple[tuple[int, ...], int]  # the model's input shape and number of classes


class FederationServicer(pb_grpc.FederationServicer):
    """The gRPC service of a run, and its connected clients. ``model_input``: the model's
    (input shape, number of classes), told to clients that bring their own data so they
    can check it before training."""

    def __init__(
        self,
        settings: DeploySettings,
        population: Population,
        rules: UpdateRules,
        token: str | None = None,
        model_input: ModelInput | None = None,
        secagg: SecAggOptions | None = None,
    ) -> None:
        self.settings = settings
        self.population = population
        self.rules = rules
        self.model_input = model_input
        self.cond = threading.Condition()
        self.sessions: dict[str, Session] = {}
        self.by_client: dict[int, Session] = {}
        self.secagg: SecAggRounds | None = None
        if secagg is not None:
            self.secagg = SecAggRounds(secagg, self.cond, self.sessions, self.by_client)
        self._pending: dict[int, Pending] = {}  # the open round's tasks
        self._closed: dict[int, Pending] = {}  # the last round's tasks, to answer late updates
        self._shutdown: str | None = None
        # Joins since the last round, applied to the population by the loop's thread only,
        # so the accounting of a round never sees a client's profile change under it.
        self._entry_overrides: dict[int, int] = {}
        self._sample_overrides: dict[int, int] = {}
        self._partition_sizes = population.num_samples.copy()
        # Who may join (tokens first, then per-client and per-address budgets), and what
        # the server makes of what they claim (docs/trust.md).
        self.trust = trust = trust_settings(settings.config_json)
        self._refusals = BoundedLog(log)
        self.gate = Gatekeeper(settings, trust, population, token, self._refusals)
        self.witness = Witness(trust, int(self._partition_sizes.max(initial=0)))
        self._norms = NormBound(None if rules.secagg else settings.norm_bound_factor)

    # ---- the round's side (the loop's thread, through GrpcTransport) ----------------
    def wait_for_clients(self, need: int) -> list[int]:
        """The ids of the clients connected now, once there are ``need`` of them (within
        deploy.join_timeout_s); the joins since the last call are applied first."""
        timeout_s = self.settings.join_timeout_s
        deadline = time.monotonic() + timeout_s
        announced = False
        with self.cond:
            while True:
                ids = sorted(cid for cid, s in self.by_client.items() if s.open)
                if len(ids) >= need:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TransportError(
                        f"only {len(ids)} of {need} clients connected after "
                        f"{timeout_s:g} s (deploy.join_timeout_s)"
                    )
                if not announced:
                    log.info("waiting for %d connected clients (have %d)", need, len(ids))
                    announced = True
                self.cond.wait(min(left, 1.0))
            apply_joins(self.population, self._entry_overrides, self._sample_overrides)
        return ids

    def hand_out(self, task: pb.Task, cid: int, model_of: Callable[[int], RoundModel]) -> bool:
        """Queue ``task`` on client ``cid``'s stream and open it for the client's update;
        False if the client is not connected. ``model_of(n)``: the server's model of the
        client's round, for the ``n`` samples its update will weigh."""
        with self.cond:
            sess = self.by_client.get(cid)
            if sess is None or not sess.open:
                return False
            n = self._expected_samples(sess)
            if self.gate.revoked_since(cid, sess.token_issued_at):
                self._drop_session(sess, "its token was revoked")
                return False
            self._pending[cid] = Pending(
                task.task_id,
                sess.session_id,
                task.round,
                task.ByteSize(),
                n,
                model=model_of(n),
                flag=sess.flag,
                width=float(task.instructions.width) or 1.0,  # absent (0): the full model
            )
            sess.queue.append(task)
            self.cond.notify_all()
        return True

    def await_updates(self, target: int, deadline: float, seen: int) -> tuple[int, bool]:
        """Wait until the open round's accepted updates number other than ``seen``, the
        round may close (``target`` accepted, or nobody left to wait for), or the monotonic
        ``deadline`` passed; returns (accepted, whether to stop waiting)."""
        with self.cond:
            while True:
                accepted = accepted_updates(self._pending)
                if round_closes(self._pending, target):
                    return accepted, True
                if accepted != seen:
                    return accepted, False
                left = deadline - time.monotonic()
                if left <= 0:
                    return accepted, True
                self.cond.wait(left)

    def close_round(self, target: int, limit_s: float) -> ClosedRound:
        """Close the open round: a task without an update is withdrawn (a straggler) if
        ``target`` updates are in, else timed out after ``limit_s``; either way the client
        is told to stop (CANCEL)."""
        with self.cond:
            closed_at = time.monotonic()
            self._norms.release(self._pending, closed_at)  # held: no norm reference came
            accepted = accepted_updates(self._pending)
            for cid, p in self._pending.items():
                if p.report is None:
                    p.report = unanswered_report(
                        cid, p, closed_at, accepted, target, limit_s, self.population
                    )
                    p.answered_at = closed_at
                    cancel_task(self.sessions.get(p.session_id), p)
            reports = {cid: p.report for cid, p in self._pending.items() if p.report is not None}
            self._norms.close(self._pending)
            self._closed, self._pending = self._pending, {}
            self.cond.notify_all()
            declared, largest = declared_of(self._closed, self.sessions, self._partition_sizes)
        return ClosedRound(self._closed, reports, closed_at, accepted, declared, largest)

    def failed(self, cid: int, reason: str) -> ClientReport:
        """The report of a client that got no task: quarantined, or not connected."""
        return failed_report(cid, int(self.population.num_samples[cid]), 0, reason)

    def end(self, reason: str, wait_s: float = 3.0) -> None:
        """Tell every connected client the run is over (``reason``), and give their streams
        ``wait_s`` to close."""
        with self.cond:
            self._shutdown = reason
            self.cond.notify_all()
            deadline = time.monotonic() + wait_s
            while any(s.open for s in self.by_client.values()):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(min(left, 0.1))

    def knows_session(self, session_id: str) -> bool:  # (any thread) the SessionGate asks
        with self.cond:
            return session_id in self.sessions

    # ---- the clients' side (gRPC threads) -------------------------------------------
    def Join(self, request: pb.JoinRequest, context: grpc.ServicerContext) -> pb.JoinReply:  # noqa: N802
        peer, cid, s = context.peer(), int(request.client_id), self.settings
        try:  # the token before any budget: a flood without one locks nobody out
            admitted = self.gate.admit(request, peer)
        except Refusal as r:
            self._refusals.warning(r.why, "refused client %d from %s: %s", cid, peer, r.why)
            context.abort(r.code, r.message)
        claims, local_n, admission = admitted.claims, admitted.local_n, admitted.admission
        device = self.population.fleet.population[admission.entry].device
        with self.cond:
            old = self.by_client.get(cid)
            if old is not None:
                # The same client again (it restarted, or lost its link): the new session
                # replaces the old one, whose stream ends and whose task is lost.
                self._drop_session(old, "reconnected mid-round")
            sess = Session(
                secrets.token_urlsafe(24),
                cid,
                device,
                peer,
                num_samples=local_n,
                flag=admission.flag,
                joined_at=time.time(),
                token_issued_at=None if claims is None else claims.issued_at,
            )
            self.sessions[sess.session_id] = sess
            self.by_client[cid] = sess
            self._entry_overrides[cid] = admission.entry
            self._sample_overrides[cid] = self._expected_samples(sess)
            self.cond.notify_all()
        data = f"local data, {local_n} samples" if local_n else "partition data"
        log.info(
            "client %d joined from %s (device %s, enrolled by the %s, meter %s, %s)",
            cid,
            peer,
            device,
            admission.enrolment.source,
            request.meter or "?",
            data,
        )
        reply = pb.JoinReply(
            protocol_version=PROTOCOL_VERSION,
            session_id=sess.session_id,
            config_json=s.config_json,
            max_message_bytes=s.max_message_bytes,
            device=device,
        )
        # the precisions the client's enrolled execution target declares: the client
        # refuses a task in any other (docs/deployment.md, mixed precision)
        reply.precisions.extend(enrolled_precisions(self.population.fleet, admission.entry))
        if self.model_input is not None:
            reply.input_shape.extend(self.model_input[0])
            reply.num_classes = self.model_input[1]
        return reply

    def Tasks(self, request: pb.TaskRequest, context: grpc.ServicerContext) -> Iterator[pb.Task]:  # noqa: N802
        with self.cond:
            sess = self.sessions.get(request.session_id)
            if sess is not None:
                sess.stream_gen += 1
                gen = sess.stream_gen
                sess.open = True
                self.cond.notify_all()
        if sess is None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown session; join again")
        context.add_callback(lambda: self._stream_closed(sess, gen))
        return stream_tasks(
            self.cond,
            sess,
            gen,
            context,
            self.settings.keepalive_s,
            lambda: (self._pending.get(sess.client_id), self._shutdown),
        )

    def SubmitUpdate(self, request: pb.Update, context: grpc.ServicerContext) -> pb.Ack:  # noqa: N802
        size = request.ByteSize()
        with self.cond:
            sess = self.sessions.get(request.session_id)
            if sess is None or request.session_id != session_of(context):
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown session; join again")
            cid = sess.client_id
            pending = self._pending.get(cid)
            if pending is None or pending.report is not None or pending.task_id != request.task_id:
                return self._not_taken(cid, request)
            claims = self.witness.rules_for(sess)
        # Judged outside the lock: decoding a large update must not stall the other clients.
        report = judge_update(request, size, cid, pending, self.rules, claims)
        sketch = self.witness.sketch(report)
        with self.cond:
            if self._pending.get(cid) is not pending or pending.report is not None:
                return self._not_taken(cid, request)
            report, sketch = self.witness.unreplayed(pending, report, sketch)
            if sketch is not None:
                settled = self._norm_judged(pending, report)
                if settled is None:  # the round closed meanwhile and settled it
                    return ack_of(pending.report)
                report = settled
            pending.report, pending.answered_at = report, time.monotonic()
            pending.secagg_keys = keys_of(request)
            n = self.witness.settled(pending, report, size, sess.joined_at, sketch)
            if n is not None:
                self._sample_overrides[cid] = n
            self._settled(cid, pending)
            self.cond.notify_all()
        return ack_of(pending.report)  # as settled (async serving: stored, or failed)

    def _settled(self, cid: int, pending: Pending) -> None:
        """(lock held) A task's report is in; a round takes it at close (async: at once)."""

    def _norm_judged(self, pending: Pending, report: ClientReport) -> ClientReport | None:
        """(lock held) ``report``, rejected by the norm bound (norms.py) now, so that the
        acknowledgement says it. With too few norms for a median and more updates to come,
        it waits for them; None if the round closed meanwhile (and settled it accepted)."""
        bound = self._norms
        if bound.factor is None or report.delta is None:
            return report
        pending.norm = norm = float(report.delta.norm())
        while True:
            ref = bound.reference(self._pending)
            if bound.ready(ref) or not bound.to_come(pending, self._pending):
                break
            pending.held = report
            self.cond.wait(1.0)
            if self._pending.get(report.client_id) is not pending or pending.report is not None:
                return None
        pending.held = None
        why = bound.verdict(norm, ref)
        if why is None:
            return report
        pending.norm = None
        return as_rejected(report, why, pending.model, pending.flag)

    def observations(self) -> dict[int, Observation]:
        """(any thread) Each client's latest task as the server saw it (docs/trust.md)."""
        return self.witness.observations()

    def SecAggSubmit(self, request: pb.SecAggMessage, context: grpc.ServicerContext) -> pb.Ack:  # noqa: N802
        if self.secagg is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "secure aggregation is off")
        return self.secagg.rpc(request, context)

    def _not_taken(self, cid: int, req: pb.Update) -> pb.Ack:
        """(lock held) A late, duplicate or stray update: logged (rate-bounded), answered."""
        reason = late_reason(self._pending.get(cid), self._closed.get(cid), req)
        self._refusals.warning(f"late {cid}", "update of client %d not taken: %s", cid, reason)
        return pb.Ack(accepted=False, reason=reason)

    def _expected_samples(self, sess: Session) -> int:
        if sess.num_samples > 0:
            return sess.num_samples
        return int(self._partition_sizes[sess.client_id])

    def _drop_session(self, sess: Session, reason: str) -> None:
        """(lock held) Forget a session: its stream ends, its open task fails."""
        self.sessions.pop(sess.session_id, None)
        if self.by_client.get(sess.client_id) is sess:
            del self.by_client[sess.client_id]
        sess.stream_gen += 1
        sess.open = False
        self._fail_pending(sess, reason)
        self.cond.notify_all()

    def _fail_pending(self, sess: Session, reason: str) -> None:
        """(lock held) The session's open task, if any, fails with ``reason``."""
        p = self._pending.get(sess.client_id)
        if p is not None and p.report is None and p.session_id == sess.session_id:
            log.warning("client %d in round %d: %s", sess.client_id, p.round_idx, reason)
            n = int(self.population.num_samples[sess.client_id])
            p.report = failed_report(sess.client_id, n, p.bytes_down, reason)
            p.answered_at = time.monotonic()

    def _stream_closed(self, sess: Session, gen: int) -> None:
        with self.cond:
            if sess.stream_gen != gen:
                return  # a newer stream of the same session took over
            sess.open = False
            self._fail_pending(sess, "disconnected mid-round")
            self.cond.notify_all()
        if self._shutdown is None:
            log.info("client %d disconnected", sess.client_id)
