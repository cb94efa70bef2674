"""The server side of a deployment: ``GrpcTransport`` is the round loop's ClientTransport
over gRPC.

Clients connect to it (``Join``, then a long-lived ``Tasks`` stream) and stay connected
between rounds. ``fit`` hands the round's task to each selected client on its stream and
waits for the updates until the round's target of accepted updates is in (the loop's
``clients_per_round``: with over-selection the round closes early, and the late clients'
tasks are withdrawn with a CANCEL and reported as ``straggler``s), every client answered
or disconnected, or the round timed out.
A client that disconnects or times out becomes a ``failed`` report; an update that fails
validation becomes ``rejected``, with its reason. The loop's accounting turns those into
ledger rows like any other client's, so nothing past this seam knows it was gRPC.

Threads: gRPC runs each call on its own worker thread (a connected client holds one for its
stream); the round loop calls ``available_clients``/``fit`` from its own thread. All shared
state is guarded by one condition variable."""

from __future__ import annotations

import hmac
import logging
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass, field

import grpc
import numpy as np
import torch

from greenfl.clients.validate import (
    PROTOCOL_VERSION,
    check_delta,
    check_message_size,
    check_protocol,
    check_report_fields,
)
from greenfl.compression import Codec
from greenfl.config import RunConfig
from greenfl.core.errors import ConfigError, TransportError, UpdateRejected
from greenfl.core.messages import ClientReport, FitInstructions
from greenfl.core.params import ParamSpec
from greenfl.deploy import greenfl_pb2 as pb
from greenfl.deploy import greenfl_pb2_grpc as pb_grpc
from greenfl.deploy.wire import encoded_from_pb, instructions_to_pb, params_from_pb, params_to_pb
from greenfl.fleet.population import Population

log = logging.getLogger("greenfl.serve")

MB = 1_000_000
# gRPC's own cap sits above deploy.max_message_mb, so that a moderately oversized update
# still reaches validation and is rejected with a logged reason in the ledger; beyond the
# cap gRPC refuses the message itself (RESOURCE_EXHAUSTED) and the client reports an error.
GRPC_CAP_FACTOR = 2
GRPC_CAP_HEADROOM_BYTES = 1 << 20


@dataclass
class _Session:
    session_id: str
    client_id: int
    device: str
    peer: str
    stream_gen: int = 0  # bumped by each new Tasks stream; an older stream then ends
    open: bool = False  # a Tasks stream is open: the client is connected
    queue: deque[pb.Task] = field(default_factory=deque)
    num_samples: int = 0  # > 0: the client trains on its own local data of this size


@dataclass
class _Pending:
    task_id: str
    session_id: str
    round_idx: int
    bytes_down: int
    num_samples: int  # the update's expected weight: partition size, or declared local size
    delivered_at: float | None = None  # monotonic time the client took the task off its stream
    report: ClientReport | None = None


@dataclass(frozen=True)
class TlsFiles:
    cert_pem: bytes
    key_pem: bytes


class GrpcTransport:
    """A ClientTransport whose clients are real processes that joined over gRPC."""

    def __init__(
        self,
        cfg: RunConfig,
        codec: Codec,
        address: str,
        token: str | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
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
        self._sessions: dict[str, _Session] = {}
        self._by_client: dict[int, _Session] = {}
        self._pending: dict[int, _Pending] = {}
        self._closed: dict[int, _Pending] = {}  # the last round's tasks, to answer late updates
        self._device_overrides: dict[int, str] = {}
        self._sample_overrides: dict[int, int] = {}
        self._partition_sizes: np.ndarray | None = None
        self._target: int | None = None  # accepted updates that close the next round
        self.model_input: tuple[tuple[int, ...], int] | None = None
        self._shutdown: str | None = None
        self._started_rounds = False
        self.population: Population | None = None
        self.spec: ParamSpec | None = None
        self.server: grpc.Server | None = None
        self.port: int | None = None

    # ---- lifecycle ------------------------------------------------------------------
    def start(
        self,
        population: Population,
        spec: ParamSpec,
        model_input: tuple[tuple[int, ...], int] | None = None,
    ) -> int:
        """Listen on ``address``; returns the bound port (useful with port 0).
        ``model_input``: the model's (input shape, number of classes), told to clients that
        bring their own data so they can check it before training."""
        self.population = population
        self.spec = spec
        self.model_input = model_input
        self._partition_sizes = population.num_samples.copy()
        task_bytes = 4 * spec.numel + 64 * 1024
        if task_bytes > self.max_message_bytes:
            raise ConfigError(
                f"deploy.max_message_mb = {self.cfg.deploy.max_message_mb:g} is too small for "
                f"the model's {spec.numel} parameters (~{task_bytes / MB:.3g} MB per message)"
            )
        cap = self.max_message_bytes * GRPC_CAP_FACTOR + GRPC_CAP_HEADROOM_BYTES
        options = [
            ("grpc.max_receive_message_length", cap),
            ("grpc.max_send_message_length", cap),
            ("grpc.so_reuseport", 0),  # never share a port with another server by accident
            ("grpc.keepalive_time_ms", 20_000),
            ("grpc.keepalive_timeout_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ]
        # One worker thread per connected client (its Tasks stream) plus room for calls.
        workers = min(population.size, 4096) + 16
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=options)
        pb_grpc.add_FederationServicer_to_server(_Servicer(self), server)
        try:
            if self.tls is not None:
                creds = grpc.ssl_server_credentials([(self.tls.key_pem, self.tls.cert_pem)])
                port = server.add_secure_port(self.address, creds)
            else:
                port = server.add_insecure_port(self.address)
        except RuntimeError as exc:
            raise TransportError(f"cannot listen on {self.address}: {exc}") from None
        if port == 0:
            raise TransportError(f"cannot listen on {self.address}")
        server.start()
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
    def connected(self) -> list[int]:
        with self._cond:
            return sorted(cid for cid, s in self._by_client.items() if s.open)

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
            # Device changes are applied here, in the loop's thread, so the accounting of a
            # round never sees a client's profile change under it.
            for cid, device in self._device_overrides.items():
                _assign_device(self._pop, cid, device)
            self._device_overrides.clear()
            # A client with its own data weighs (and is estimated) by its declared size.
            for cid, n in self._sample_overrides.items():
                self._pop.num_samples[cid] = n
            self._sample_overrides.clear()
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
        )
        reports: dict[int, ClientReport] = {}
        with self._cond:
            self._pending = {}
            for cid in cohort:
                sess = self._by_client.get(int(cid))
                if sess is None or not sess.open:
                    reports[cid] = self._failed(cid, 0, "not connected when the round started")
                    continue
                task = pb.Task()
                task.CopyFrom(base)
                task.task_id = f"r{round_idx}-c{cid}-{secrets.token_hex(6)}"
                self._pending[cid] = _Pending(
                    task.task_id,
                    sess.session_id,
                    round_idx,
                    task.ByteSize(),
                    self._expected_samples(sess),
                )
                sess.queue.append(task)
            self._cond.notify_all()
            start = time.monotonic()
            deadline = start + self.round_timeout_s
            while not self._round_closes(target):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            closed = time.monotonic()
            accepted = self._accepted()
            for cid, p in self._pending.items():
                if p.report is None:
                    if accepted >= target:
                        p.report = self._withdrawn(cid, p, closed, accepted)
                    else:
                        reason = f"timeout: no update within {self.round_timeout_s:g} s"
                        log.warning("client %d in round %d: %s", cid, round_idx, reason)
                        p.report = self._failed(cid, p.bytes_down, reason)
                    self._cancel(cid, p)
                reports[cid] = p.report
            self._closed, self._pending = self._pending, {}
            self._cond.notify_all()
        if accepted >= target and target < len(cohort):
            log.info(
                "round %d closed after %.3f s with %d of %d updates; withdrew %d task(s)",
                round_idx,
                closed - start,
                accepted,
                len(cohort),
                sum(r.status == "straggler" for r in reports.values()),
            )
        return [reports[cid] for cid in cohort]

    def _accepted(self) -> int:
        """(lock held) Updates of the open round that passed validation."""
        return sum(p.report is not None and p.report.status == "completed"
                   for p in self._pending.values())  # fmt: skip

    def _round_closes(self, target: int) -> bool:
        """(lock held) Enough updates accepted, or nobody left to wait for."""
        if self._accepted() >= target:
            return True
        return all(p.report is not None for p in self._pending.values())

    def _withdrawn(self, cid: int, p: _Pending, closed: float, accepted: int) -> ClientReport:
        """(lock held) The report of a client still working when the round had its updates:
        a straggler, as in simulation. Its work until now counts (as modelled energy: its
        own meter's reading never arrives)."""
        worked_s = 0.0 if p.delivered_at is None else closed - p.delivered_at
        return ClientReport(
            client_id=int(cid),
            status="straggler",
            reason=f"withdrawn: the round closed with {accepted} updates",
            delta=None,
            num_samples=p.num_samples,
            flops=0.0,
            loss=float("nan"),
            bytes_up=0,
            bytes_down=p.bytes_down if p.delivered_at is not None else 0,
            measured_compute_s=worked_s,
        )

    def _cancel(self, cid: int, p: _Pending) -> None:
        """(lock held) Withdraw a task: drop it if still queued, else tell the client to
        stop working on it, so a straggler does not burn energy the ledger never sees."""
        sess = self._sessions.get(p.session_id)
        if sess is None:
            return
        sess.queue.clear()
        if p.delivered_at is not None and sess.open:
            sess.queue.append(
                pb.Task(
                    kind=pb.Task.CANCEL,
                    protocol_version=PROTOCOL_VERSION,
                    round=p.round_idx,
                    task_id=p.task_id,
                    reason=p.report.reason if p.report is not None else "",
                )
            )

    def _expected_samples(self, sess: _Session) -> int:
        if sess.num_samples > 0:
            return sess.num_samples
        sizes = self._partition_sizes
        return int(sizes[sess.client_id] if sizes is not None else 0)

    # ---- the clients' side (called on gRPC threads) ---------------------------------
    def join(self, req: pb.JoinRequest, context: grpc.ServicerContext) -> pb.JoinReply:
        peer = context.peer()
        cid = int(req.client_id)
        if req.protocol_version != PROTOCOL_VERSION:
            log.warning(
                "refused client %d from %s: protocol version %d (server speaks %d)",
                cid,
                peer,
                req.protocol_version,
                PROTOCOL_VERSION,
            )
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"protocol version {req.protocol_version} is not supported "
                f"(server speaks {PROTOCOL_VERSION})",
            )
        if self.token is not None and not hmac.compare_digest(
            req.token.encode("utf-8"), self.token.encode("utf-8")
        ):
            log.warning("refused client %d from %s: invalid token", cid, peer)
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid token")
        pop = self._pop
        if not 0 <= cid < pop.size:
            log.warning("refused client %d from %s: no such client id", cid, peer)
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"client id {cid} is out of range 0..{pop.size - 1} "
                f"(data.num_clients = {pop.size})",
            )
        device = pop.fleet.devices[pop.device[cid]].name
        if req.device:
            known = sorted({e.device for e in pop.fleet.population})
            if req.device not in known:
                log.warning("refused client %d from %s: unknown device %r", cid, peer, req.device)
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"device {req.device!r} is not in the server's fleet; "
                    f"choose one of {', '.join(known)}",
                )
            device = req.device
        local_n = int(req.num_samples)
        cap = self.cfg.deploy.max_client_samples
        if local_n < 0 or (cap is not None and local_n > cap):
            log.warning("refused client %d from %s: %d local samples", cid, peer, local_n)
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{local_n} local samples is out of range 1..{cap} (deploy.max_client_samples)"
                if local_n > 0
                else f"num_samples {local_n} is negative",
            )
        with self._cond:
            old = self._by_client.get(cid)
            if old is not None:
                # The same client again (it restarted, or lost its link): the new session
                # replaces the old one, whose stream ends and whose task is lost.
                self._drop_session(old, "reconnected mid-round")
            sess = _Session(secrets.token_urlsafe(24), cid, device, peer, num_samples=local_n)
            self._sessions[sess.session_id] = sess
            self._by_client[cid] = sess
            if req.device:
                self._device_overrides[cid] = device
            self._sample_overrides[cid] = self._expected_samples(sess)
            self._cond.notify_all()
        data = f"local data, {local_n} samples" if local_n else "partition data"
        log.info(
            "client %d joined from %s (device %s, meter %s, %s)",
            cid,
            peer,
            device,
            req.meter or "?",
            data,
        )
        reply = pb.JoinReply(
            protocol_version=PROTOCOL_VERSION,
            session_id=sess.session_id,
            config_json=self.config_json,
            max_message_bytes=self.max_message_bytes,
            device=device,
        )
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
        keepalive_s = self.cfg.deploy.keepalive_s
        while True:
            with self._cond:
                wake = time.monotonic() + keepalive_s
                while (
                    not sess.queue
                    and self._shutdown is None
                    and sess.stream_gen == gen
                    and context.is_active()
                ):
                    left = wake - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(min(left, 1.0))
                if sess.stream_gen != gen or not context.is_active():
                    return
                if sess.queue:
                    task = sess.queue.popleft()
                    p = self._pending.get(sess.client_id)
                    if task.kind == pb.Task.FIT and p is not None and p.task_id == task.task_id:
                        p.delivered_at = time.monotonic()
                elif self._shutdown is not None:
                    task = pb.Task(
                        kind=pb.Task.SHUTDOWN,
                        protocol_version=PROTOCOL_VERSION,
                        reason=self._shutdown,
                    )
                else:
                    task = pb.Task(kind=pb.Task.KEEPALIVE, protocol_version=PROTOCOL_VERSION)
            yield task
            if task.kind == pb.Task.SHUTDOWN:
                return

    def submit(self, req: pb.Update, context: grpc.ServicerContext) -> pb.Ack:
        size = req.ByteSize()
        with self._cond:
            sess = self._sessions.get(req.session_id)
            if sess is None:
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown session; join again")
            pending = self._pending.get(sess.client_id)
            if (
                pending is None
                or pending.report is not None
                or pending.task_id != req.task_id
                or pending.session_id != sess.session_id
            ):
                return pb.Ack(accepted=False, reason=self._late_reason(sess.client_id, req))
        report = self._judge(req, size, sess.client_id, pending)
        with self._cond:
            if self._pending.get(sess.client_id) is not pending or pending.report is not None:
                return pb.Ack(accepted=False, reason=self._late_reason(sess.client_id, req))
            pending.report = report
            self._cond.notify_all()
        return pb.Ack(accepted=report.status == "completed", reason=report.reason or "")

    # ---- helpers --------------------------------------------------------------------
    def _late_reason(self, cid: int, req: pb.Update) -> str:
        """(lock held) Why an update has no open task: e.g. its round closed without it."""
        for p in (self._pending.get(cid), self._closed.get(cid)):
            if p is not None and p.task_id == req.task_id and p.report is not None:
                return f"too late: round {p.round_idx} closed ({p.report.reason or 'done'})"
        return "no open task with this id"

    @property
    def _pop(self) -> Population:
        if self.population is None:
            raise TransportError("GrpcTransport.start() was not called")
        return self.population

    @property
    def _spec(self) -> ParamSpec:
        if self.spec is None:
            raise TransportError("GrpcTransport.start() was not called")
        return self.spec

    def _failed(self, cid: int, bytes_down: int, reason: str) -> ClientReport:
        return ClientReport(
            client_id=int(cid),
            status="failed",
            reason=reason,
            delta=None,
            num_samples=int(self._pop.num_samples[cid]),
            flops=0.0,
            loss=float("nan"),
            bytes_up=0,
            bytes_down=bytes_down,
        )

    def _drop_session(self, sess: _Session, reason: str) -> None:
        """Forget a session (lock held): its stream ends, its open task fails."""
        self._sessions.pop(sess.session_id, None)
        if self._by_client.get(sess.client_id) is sess:
            del self._by_client[sess.client_id]
        sess.stream_gen += 1
        sess.open = False
        self._fail_pending(sess, reason)
        self._cond.notify_all()

    def _fail_pending(self, sess: _Session, reason: str) -> None:
        p = self._pending.get(sess.client_id)
        if p is not None and p.report is None and p.session_id == sess.session_id:
            log.warning("client %d in round %d: %s", sess.client_id, p.round_idx, reason)
            p.report = self._failed(sess.client_id, p.bytes_down, reason)

    def _stream_closed(self, sess: _Session, gen: int) -> None:
        with self._cond:
            if sess.stream_gen != gen:
                return  # a newer stream of the same session took over
            sess.open = False
            self._fail_pending(sess, "disconnected mid-round")
            self._cond.notify_all()
        if self._shutdown is None:
            log.info("client %d disconnected", sess.client_id)

    def _judge(self, req: pb.Update, size: int, cid: int, pending: _Pending) -> ClientReport:
        """The report for one update: completed, failed (the client said so) or rejected."""
        fp = req.footprint
        flops = _finite_or(fp.flops, 0.0, low=0.0)
        compute_s = _finite_or(fp.compute_s, None, low=0.0)
        energy_j = _finite_or(fp.energy_j, None, low=0.0) if fp.HasField("energy_j") else None
        loss = float(req.loss) if math.isfinite(req.loss) else float("nan")

        def report(status: str, reason: str | None, delta: torch.Tensor | None) -> ClientReport:
            return ClientReport(
                client_id=cid,
                status=status,
                reason=reason,
                delta=delta,
                num_samples=pending.num_samples,
                flops=flops,
                loss=loss,
                bytes_up=size,
                bytes_down=pending.bytes_down,
                measured_energy_j=energy_j,
                measured_compute_s=compute_s,
                # The client's meter modelled it (e.g. codecarbon from a TDP): say so.
                energy_estimated=energy_j is not None and bool(fp.estimated),
            )

        if req.error:
            reason = f"client error: {req.error[:300]}"
            log.warning("client %d in round %d: %s", cid, pending.round_idx, reason)
            return report("failed", reason, None)
        try:
            delta = self._check_update(req, size, cid, pending)
        except UpdateRejected as exc:
            log.warning("rejected update of client %d in round %d: %s", cid, pending.round_idx, exc)
            return report("rejected", str(exc), None)
        return report("completed", None, delta)

    def _check_update(self, req: pb.Update, size: int, cid: int, p: _Pending) -> torch.Tensor:
        check_protocol(req.protocol_version)
        check_message_size(size, self.max_message_bytes)
        if req.client_id != cid or req.round != p.round_idx:
            raise UpdateRejected(
                f"update names client {req.client_id} round {req.round}, "
                f"expected client {cid} round {p.round_idx}"
            )
        spec = self._spec
        kind = req.WhichOneof("delta")
        if kind == "tensors":
            if self.codec.name != "identity":
                raise UpdateRejected(
                    f"uncompressed tensors sent, but the run's codec is {self.codec.name!r}"
                )
            delta = params_from_pb(req.tensors.tensors, spec)
        elif kind == "encoded":
            enc = encoded_from_pb(req.encoded)
            if enc.codec != self.codec.name:
                raise UpdateRejected(
                    f"update encoded with {enc.codec!r}, the run's codec is {self.codec.name!r}"
                )
            if enc.num_elements != spec.numel:
                raise UpdateRejected(
                    f"encoded update has {enc.num_elements} elements, the model {spec.numel}"
                )
            delta = self.codec.decode(enc)
        else:
            raise UpdateRejected("update carries no delta")
        check_delta(delta, spec.numel, self.cfg.deploy.max_update_norm)
        check_report_fields(int(req.num_samples), p.num_samples, req.loss, req.footprint.flops)
        return delta


def _finite_or(value: float, default: float | None, low: float) -> float | None:
    """A client-reported number, or ``default`` where it is not finite or below ``low``:
    a bad footprint figure must not put NaN into the ledger's sums."""
    v = float(value)
    return v if math.isfinite(v) and v >= low else default


def _assign_device(pop: Population, cid: int, device: str) -> None:
    """Account client ``cid`` as ``device``: the population entry with that device that keeps
    its region (and network) where the fleet has one."""
    fleet = pop.fleet
    current = fleet.population[int(pop.entry[cid])]
    if current.device == device:
        return
    options = [i for i, e in enumerate(fleet.population) if e.device == device]
    best = min(
        options,
        key=lambda i: (
            fleet.population[i].region != current.region,
            fleet.population[i].network != current.network,
        ),
    )
    e = fleet.population[best]
    pop.entry[cid] = best
    pop.device[cid] = fleet.device_index(e.device)
    pop.network[cid] = fleet.network_index(e.network)
    pop.region[cid] = fleet.region_index(e.region)


class _Servicer(pb_grpc.FederationServicer):
    def __init__(self, transport: GrpcTransport) -> None:
        self.t = transport

    def Join(self, request: pb.JoinRequest, context: grpc.ServicerContext) -> pb.JoinReply:  # noqa: N802
        return self.t.join(request, context)

    def Tasks(self, request: pb.TaskRequest, context: grpc.ServicerContext) -> Iterator[pb.Task]:  # noqa: N802
        return self.t.tasks(request, context)

    def SubmitUpdate(self, request: pb.Update, context: grpc.ServicerContext) -> pb.Ack:  # noqa: N802
        return self.t.submit(request, context)
