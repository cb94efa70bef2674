"""The server side of a deployment: ``GrpcTransport`` is the round loop's ClientTransport
over gRPC.

Clients connect to it (``Join``, then a long-lived ``Tasks`` stream) and stay connected
between rounds. ``fit`` hands the round's task to each selected client on its stream and
waits for the updates until the round's target of accepted updates is in (with
over-selection the round closes early, and the late clients' tasks are withdrawn with a
CANCEL and reported as ``straggler``s), every client answered or disconnected, or timed out.
A client that disconnects or times out is ``failed``; an update that fails validation is
``rejected`` with its reason: ledger rows like any other, so nothing past this seam knows.

Threads: gRPC runs each call on its own worker thread (a connected client holds one); the
loop calls ``available_clients``/``fit`` from its own. One condition variable guards all."""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from collections.abc import Iterator, Sequence

import grpc
import numpy as np
import torch

from greenfl.clients.validate import PROTOCOL_VERSION
from greenfl.compression.base import Codec
from greenfl.config import RunConfig
from greenfl.core.errors import TransportError
from greenfl.core.messages import ClientReport, FitInstructions
from greenfl.core.params import ParamSpec
from greenfl.deploy import greenfl_pb2 as pb
from greenfl.deploy.checks import UpdateRules, check_message_limit, judge_update
from greenfl.deploy.plausible import bound_round, round_model
from greenfl.deploy.quarantine import Quarantine
from greenfl.deploy.ratelimit import BoundedLog, TokenBucket
from greenfl.deploy.rounds import (
    accepted_updates,
    cancel_task,
    declared_of,
    failed_report,
    late_reason,
    log_early_close,
    round_closes,
    unanswered_report,
)
from greenfl.deploy.secagg_server import SecAggOptions, SecAggRounds, check_secagg, keys_of
from greenfl.deploy.servicer import Servicer, SessionGate, TlsFiles, listen, session_of
from greenfl.deploy.sessions import Pending, Refusal, Session, admit, apply_joins
from greenfl.deploy.stream import stream_tasks
from greenfl.deploy.wire import instructions_to_pb, params_to_pb
from greenfl.fleet.population import Population

log = logging.getLogger("greenfl.serve")

MB = 1_000_000


class GrpcTransport:
    """A ClientTransport whose clients are real processes that joined over gRPC; with
    ``secagg``, secure aggregation (docs/secure-aggregation.md)."""

    def __init__(
        self,
        cfg: RunConfig,
        codec: Codec,
        address: str,
        token: str | None = None,
        tls: TlsFiles | None = None,
        secagg: SecAggOptions | None = None,
    ) -> None:
        check_secagg(secagg, codec.name)
        self.cfg = cfg
        self.codec = codec
        self.address = address
        self.token = token
        self.tls = tls
        dep = cfg.deploy
        self.max_message_bytes = int(dep.max_message_mb * MB)
        self.round_timeout_s = min(dep.round_timeout_s, cfg.fleet.deadline_s or math.inf)
        self.config_json = cfg.model_dump_json()
        self._cond = threading.Condition()
        self._sessions: dict[str, Session] = {}
        self._by_client: dict[int, Session] = {}
        self._pending: dict[int, Pending] = {}
        self._closed: dict[int, Pending] = {}  # the last round's tasks, to answer late updates
        self._secagg = secagg and SecAggRounds(secagg, self._cond, self._sessions, self._by_client)
        self._device_overrides: dict[int, str] = {}
        self._sample_overrides: dict[int, int] = {}
        self._partition_sizes: np.ndarray | None = None
        self.flops_per_sample = 0.0  # the model's training FLOPs per sample, once started
        self._quarantine = Quarantine(dep.quarantine_rounds)
        self._joins = TokenBucket(dep.join_rate_per_s, burst=100)
        self._refusals = BoundedLog(log)
        self._target: int | None = None  # accepted updates that close the next round
        self.model_input: tuple[tuple[int, ...], int] | None = None
        self._shutdown: str | None = None
        self._started_rounds = False
        self.population: Population | None = None
        self.spec: ParamSpec | None = None
        self.server: grpc.Server | None = None
        self.port: int | None = None

    def start(
        self,
        population: Population,
        spec: ParamSpec,
        model_input: tuple[tuple[int, ...], int] | None = None,
        flops_per_sample: float = 0.0,
    ) -> int:
        """Listen on ``address``; returns the bound port (useful with port 0).
        ``model_input``: the model's (input shape, number of classes), told to clients that
        bring their own data so they can check it before training."""
        self.population = population
        self.spec = spec
        self.model_input = model_input
        self.flops_per_sample = flops_per_sample
        self._partition_sizes = population.num_samples.copy()
        check_message_limit(spec.numel, self.max_message_bytes)
        # One worker thread per connected client (its Tasks stream) plus room for calls.
        workers = min(population.size, 4096) + 16
        gate = SessionGate(self.knows_session, spec.numel)
        server, port = listen(
            self.address, Servicer(self, self._secagg), self.max_message_bytes, workers,
            self.tls, gate,
        )  # fmt: skip
        self.server = server
        self.port = port
        return port

    def stop(self) -> None:
        """Stop serving without ending the run: clients keep retrying, so a resumed server
        finds them again."""
        if self.server is not None:
            self.server.stop(grace=0.5).wait()
            self.server = None

    def close(self, reason: str = "the run is over") -> None:
        """Tell every connected client the run is over, then stop serving."""
        with self._cond:
            self._shutdown = reason
            self._cond.notify_all()
            deadline = time.monotonic() + 3.0
            while any(s.open for s in self._by_client.values()):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.1))
        self.stop()

    # ---- the round loop's side ------------------------------------------------------
    def available_clients(self) -> np.ndarray:
        """The clients connected now: the loop selects only among them. Before the first
        round this waits for ``deploy.min_clients``, later for at least one."""
        dep = self.cfg.deploy
        need = 1 if self._started_rounds else dep.min_clients
        deadline = time.monotonic() + dep.join_timeout_s
        announced = False
        with self._cond:
            while True:
                ids = sorted(cid for cid, s in self._by_client.items() if s.open)
                if len(ids) >= need:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TransportError(
                        f"only {len(ids)} of {need} clients connected after "
                        f"{dep.join_timeout_s:g} s (deploy.join_timeout_s)"
                    )
                if not announced:
                    log.info("waiting for %d connected clients (have %d)", need, len(ids))
                    announced = True
                self._cond.wait(min(left, 1.0))
            # Applied here, in the loop's thread, so the accounting of a round never sees a
            # client's profile change under it.
            apply_joins(self._pop, self._device_overrides, self._sample_overrides)
            self._started_rounds = True
        return np.asarray(ids, dtype=np.int64)

    def expect_updates(self, target: int) -> None:
        """The round loop's hook: the next ``fit`` may close as soon as ``target`` updates
        were accepted (``train.clients_per_round``; the cohort holds more with
        over-selection)."""
        self._target = target if self.cfg.deploy.early_close else None

    def fit(
        self,
        round_idx: int,
        cohort: Sequence[int],
        global_params: torch.Tensor,
        instructions: FitInstructions,
        progress: object = None,
        start_s: float = 0.0,
    ) -> list[ClientReport]:
        spec = self._spec
        target = len(cohort) if self._target is None else min(self._target, len(cohort))
        self._target = None
        base = pb.Task(
            kind=pb.Task.FIT,
            protocol_version=PROTOCOL_VERSION,
            round=round_idx,
            params=params_to_pb(global_params, spec),
            instructions=instructions_to_pb(instructions),
            seed=self.cfg.seed,
            secagg=self._secagg.marker() if self._secagg else None,  # keys, not the delta
        )
        reports: dict[int, ClientReport] = {}
        with self._cond:
            self._pending = {}
            for cid in cohort:
                sess = self._by_client.get(int(cid))
                why = self._quarantine.reason(int(cid), round_idx)
                if why is None and (sess is None or not sess.open):
                    why = "not connected when the round started"
                if why is not None or sess is None:
                    reports[cid] = failed_report(cid, int(self._pop.num_samples[cid]), 0, why)
                    continue
                task = pb.Task()
                task.CopyFrom(base)
                if cid in instructions.client_steps:  # partial work: this client's step cap
                    task.instructions.CopyFrom(instructions_to_pb(instructions.for_client(cid)))
                task.task_id = f"r{round_idx}-c{cid}-{secrets.token_hex(6)}"
                n = self._expected_samples(sess)
                fps, dep = self.flops_per_sample, self.cfg.deploy
                self._pending[cid] = Pending(
                    task.task_id, sess.session_id, round_idx, task.ByteSize(), n,
                    model=round_model(self._pop, int(cid), instructions, n, fps,
                                      self.round_timeout_s, dep.plausibility_factor),
                )  # fmt: skip
                sess.queue.append(task)
            self._cond.notify_all()
            start = time.monotonic()
            deadline = start + self.round_timeout_s
            while not round_closes(self._pending, target):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            closed = time.monotonic()
            accepted = accepted_updates(self._pending)
            for cid, p in self._pending.items():
                if p.report is None:
                    p.report = unanswered_report(
                        cid, p, closed, accepted, target, self.round_timeout_s, self._pop
                    )
                    cancel_task(self._sessions.get(p.session_id), p)
                reports[cid] = p.report
            self._closed, self._pending = self._pending, {}
            self._cond.notify_all()
        if accepted >= target and target < len(cohort):
            log_early_close(round_idx, closed - start, accepted, list(reports.values()))
        dep = self.cfg.deploy
        declared = declared_of(self._closed, self._sessions, self._partition_sizes)
        if self._secagg is not None:  # the server learns only the sum of accepted updates
            reports = self._secagg.aggregate(round_idx, reports, self._closed, spec.numel,
                                             dep.sample_bound_factor, *declared)  # fmt: skip
        out = bound_round([reports[cid] for cid in cohort], dep.norm_bound_factor,
                          dep.sample_bound_factor, *declared)  # fmt: skip
        self._quarantine.record(round_idx, out)
        return out

    def _expected_samples(self, sess: Session) -> int:
        if sess.num_samples > 0:
            return sess.num_samples
        sizes = self._partition_sizes
        return int(sizes[sess.client_id] if sizes is not None else 0)

    # ---- the clients' side (called on gRPC threads) ---------------------------------
    def join(self, req: pb.JoinRequest, context: grpc.ServicerContext) -> pb.JoinReply:
        peer, cid, dep = context.peer(), int(req.client_id), self.cfg.deploy
        if not self._joins.take():
            self._refusals.warning("rate", "refused a join from %s: over the join rate", peer)
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many joins; retry later")
        try:
            device, local_n = admit(
                req, self._pop, self.token, dep.max_client_samples, dep.auth == "per_client"
            )
        except Refusal as r:
            self._refusals.warning(r.why, "refused client %d from %s: %s", cid, peer, r.why)
            context.abort(r.code, r.message)
        with self._cond:
            old = self._by_client.get(cid)
            if old is not None:
                # The same client again (it restarted, or lost its link): the new session
                # replaces the old one, whose stream ends and whose task is lost.
                self._drop_session(old, "reconnected mid-round")
            sess = Session(secrets.token_urlsafe(24), cid, device, peer, num_samples=local_n)
            self._sessions[sess.session_id] = sess
            self._by_client[cid] = sess
            if req.device:
                self._device_overrides[cid] = device
            self._sample_overrides[cid] = self._expected_samples(sess)
            self._cond.notify_all()
        data = f"local data, {local_n} samples" if local_n else "partition data"
        log.info("client %d joined from %s (device %s, meter %s, %s)",
                 cid, peer, device, req.meter or "?", data)  # fmt: skip
        reply = pb.JoinReply(
            protocol_version=PROTOCOL_VERSION, session_id=sess.session_id,
            config_json=self.config_json, max_message_bytes=self.max_message_bytes, device=device,
        )  # fmt: skip
        if self.model_input is not None:
            reply.input_shape.extend(self.model_input[0])
            reply.num_classes = self.model_input[1]
        return reply

    def tasks(self, req: pb.TaskRequest, context: grpc.ServicerContext) -> Iterator[pb.Task]:
        with self._cond:
            sess = self._sessions.get(req.session_id)
            if sess is not None:
                sess.stream_gen += 1
                gen = sess.stream_gen
                sess.open = True
                self._cond.notify_all()
        if sess is None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown session; join again")
        context.add_callback(lambda: self._stream_closed(sess, gen))
        return stream_tasks(
            self._cond,
            sess,
            gen,
            context,
            self.cfg.deploy.keepalive_s,
            lambda: (self._pending.get(sess.client_id), self._shutdown),
        )

    def submit(self, req: pb.Update, context: grpc.ServicerContext) -> pb.Ack:
        size = req.ByteSize()
        with self._cond:
            sess = self._sessions.get(req.session_id)
            if sess is None or req.session_id != session_of(context):
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown session; join again")
            cid = sess.client_id
            pending = self._pending.get(cid)
            if pending is None or pending.report is not None or pending.task_id != req.task_id:
                return self._not_taken(cid, req)
        report = judge_update(req, size, cid, pending, self._rules)
        with self._cond:
            if self._pending.get(cid) is not pending or pending.report is not None:
                return self._not_taken(cid, req)
            pending.report = report
            pending.secagg_keys = keys_of(req)
            self._cond.notify_all()
        return pb.Ack(accepted=report.status == "completed", reason=report.reason or "")

    def _not_taken(self, cid: int, req: pb.Update) -> pb.Ack:
        """(lock held) A late, duplicate or stray update: logged (rate-bounded), answered."""
        reason = late_reason(self._pending.get(cid), self._closed.get(cid), req)
        self._refusals.warning(f"late {cid}", "update of client %d not taken: %s", cid, reason)
        return pb.Ack(accepted=False, reason=reason)

    def knows_session(self, session_id: str) -> bool:
        """(any thread) Whether ``session_id`` is a live session (the SessionGate asks)."""
        with self._cond:
            return session_id in self._sessions

    @property
    def _pop(self) -> Population:
        if self.population is None:
            raise TransportError("GrpcTransport.start() was not called")
        return self.population

    @property
    def _rules(self) -> UpdateRules:
        dep, secagg = self.cfg.deploy, self._secagg is not None
        return UpdateRules(
            self.codec, self._spec, self.max_message_bytes, dep.max_update_norm, secagg
        )

    @property
    def _spec(self) -> ParamSpec:
        if self.spec is None:
            raise TransportError("GrpcTransport.start() was not called")
        return self.spec

    def _drop_session(self, sess: Session, reason: str) -> None:
        """Forget a session (lock held): its stream ends, its open task fails."""
        self._sessions.pop(sess.session_id, None)
        if self._by_client.get(sess.client_id) is sess:
            del self._by_client[sess.client_id]
        sess.stream_gen += 1
        sess.open = False
        self._fail_pending(sess, reason)
        self._cond.notify_all()

    def _fail_pending(self, sess: Session, reason: str) -> None:
        p = self._pending.get(sess.client_id)
        if p is not None and p.report is None and p.session_id == sess.session_id:
            log.warning("client %d in round %d: %s", sess.client_id, p.round_idx, reason)
            n = int(self._pop.num_samples[sess.client_id])
            p.report = failed_report(sess.client_id, n, p.bytes_down, reason)

    def _stream_closed(self, sess: Session, gen: int) -> None:
        with self._cond:
            if sess.stream_gen != gen:
                return  # a newer stream of the same session took over
            sess.open = False
            self._fail_pending(sess, "disconnected mid-round")
            self._cond.notify_all()
        if self._shutdown is None:
            log.info("client %d disconnected", sess.client_id)
