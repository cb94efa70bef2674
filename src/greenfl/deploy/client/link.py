"""A real client's link to its server: joins a ``greenfl serve`` server, takes its tasks
off the task stream, has them trained (``task.py``) and submits the updates, reconnecting
with exponential backoff while the server is away.

Its data is partition N of the run's configured dataset (demos, tests), or its own local
data directory (``--data-dir``, ``greenfl.data.local_dir``), checked against the run's model
as soon as the server has said what the model takes. A task the server withdraws (its round
closed without this client) is stopped mid-training and not submitted.

It trains with the same ``train_one`` and codecs as a simulated client, seeded the same way,
so a deployment of N clients computes exactly what ``greenfl run`` computes for them. Its
energy comes from its own meter (RAPL where readable); without one the server models it
from the client's device profile (``estimated = 1`` in the ledger). The link is
client-initiated (works from behind NAT) and reconnects with exponential backoff."""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable

import grpc

from greenfl.clients.validate import PROTOCOL_VERSION
from greenfl.core.errors import TransportError
from greenfl.data.local_dir import LocalDirDataset
from greenfl.deploy import greenfl_pb2 as pb
from greenfl.deploy import greenfl_pb2_grpc as pb_grpc
from greenfl.deploy.client.diagnose import (
    check_ca,
    check_server_address,
    plain_against_tls,
    speaks_tls,
    tls_cause,
)
from greenfl.deploy.client.local import Local, build_local
from greenfl.deploy.client.options import ClientOptions, ClientStats
from greenfl.deploy.client.secagg import SecAggParticipant
from greenfl.deploy.client.task import Row, Trained, train_task
from greenfl.deploy.client.upload import ChunkedStub
from greenfl.deploy.wire import SESSION_KEY
from greenfl.footprint.measurement import Meter
from greenfl.footprint.meters import best_meter

log = logging.getLogger("greenfl.join")

# Refusals that retrying cannot fix: the client exits instead of reconnecting.
_PERMANENT = (
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.PERMISSION_DENIED,
)


def _is_rate_limit(code: grpc.StatusCode, details: str) -> bool:
    """A refusal for joining too often (greenfl.deploy.server.admission): worth a retry."""
    return code == grpc.StatusCode.RESOURCE_EXHAUSTED and "rate-limited" in details


class _Lost(TransportError):
    """The server went away; reconnect."""


_STREAM_END = object()  # the task stream ended (put on the inbox by the reader thread)


class FederatedClient:
    """``run()`` blocks until the server ends the run; returns what this client did."""

    def __init__(
        self,
        opts: ClientOptions,
        meter: Meter | None = None,
        on_round: Callable[[Row], None] | None = None,
        data: LocalDirDataset | None = None,
    ) -> None:
        """``data``: the client's own data (``LocalDirDataset.load(DIR)``, already checked
        on its own); None: partition ``client_id`` of the run's configured dataset."""
        check_server_address(opts.server)
        if opts.ca_cert_pem is not None:
            check_ca(opts.ca_cert_pem, "the client's CA certificate")
        self.opts = opts
        self.meter = meter if meter is not None else best_meter()
        self.on_round = on_round
        self.data = data
        self.stats = ClientStats()
        self._local: Local | None = None
        self._config_json = ""
        self._device = opts.device
        self._precisions: tuple[str, ...] = ()  # what the server says the device trains in
        # The task being trained and the tasks the server withdrew; the stream reader
        # thread sets ``_cancel`` when the one being trained is withdrawn.
        self._lock = threading.Lock()
        self._current_task = ""
        self._withdrawn: set[str] = set()
        self._cancel = threading.Event()
        self._secagg = SecAggParticipant(opts.client_id, opts.test_secagg_drop_after)

    # ---- connection -----------------------------------------------------------------
    def _channel(self) -> grpc.Channel:
        limit = int(self.opts.max_message_mb * 1_000_000)
        options = [
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 10_000),
        ]
        if self.opts.ca_cert_pem is None:
            return grpc.insecure_channel(self.opts.server, options=options)
        if self.opts.tls_server_name:
            options.append(("grpc.ssl_target_name_override", self.opts.tls_server_name))
        creds = grpc.ssl_channel_credentials(root_certificates=self.opts.ca_cert_pem)
        return grpc.secure_channel(self.opts.server, creds, options=options)

    def run(self) -> ClientStats:
        delay = self.opts.backoff_initial_s
        unreachable_since: float | None = None
        rate_limited = ""  # the server's last rate-limit refusal in this outage, if any
        while True:
            joined = False
            try:
                with self._channel() as channel:
                    stub = ChunkedStub(channel)
                    # The first try of an outage fails at once when nothing listens, so the
                    # user hears about it now; later tries wait a while for the server to
                    # come up (it may be starting, or restarting with --resume).
                    left = None
                    if unreachable_since is not None:
                        left = unreachable_since + self.opts.retry_for_s - time.monotonic()
                    reply = self._join(stub, wait_s=left)
                    joined = True
                    delay = self.opts.backoff_initial_s
                    unreachable_since, rate_limited = None, ""
                    self._serve_tasks(stub, reply.session_id)
                    return self.stats
            except grpc.RpcError as exc:
                code = exc.code()  # type: ignore[attr-defined]
                details = exc.details() or ""  # type: ignore[attr-defined]
                if not joined:
                    self._refuse_if_permanent(code, details)
                if joined:
                    log.warning(
                        "connection to %s lost: %s %s", self.opts.server, code.name, details
                    )
                elif _is_rate_limit(code, details):
                    rate_limited = details
                    log.warning("%s (%s); retrying", details, self.opts.server)
                elif unreachable_since is None:
                    log.warning(
                        "the server at %s cannot be reached (%s): is `greenfl serve` running "
                        "there? retrying for up to %g s",
                        self.opts.server,
                        code.name,
                        self.opts.retry_for_s,
                    )
                else:
                    log.info("still cannot reach %s (%s)", self.opts.server, code.name)
            except _Lost as exc:
                log.warning("connection to %s lost: %s", self.opts.server, exc)
            now = time.monotonic()
            unreachable_since = unreachable_since if unreachable_since is not None else now
            if now - unreachable_since >= self.opts.retry_for_s:
                if rate_limited:
                    raise TransportError(
                        f"the server at {self.opts.server} did not admit this client for "
                        f"{self.opts.retry_for_s:g} s: {rate_limited}"
                    )
                raise TransportError(
                    f"the server at {self.opts.server} could not be reached for "
                    f"{self.opts.retry_for_s:g} s; is `greenfl serve` running there?"
                )
            # Full jitter, so clients cut off together do not all return at the same instant.
            wait_s = delay * (0.5 + random.random() / 2)
            log.info("reconnecting in %.1f s", wait_s)
            time.sleep(min(wait_s, max(0.0, unreachable_since + self.opts.retry_for_s - now)))
            delay = min(delay * 2, self.opts.backoff_max_s)
            self.stats.reconnects += 1

    def _refuse_if_permanent(self, code: grpc.StatusCode, details: str) -> None:
        """TransportError naming the cause when a failed join cannot be mended by retrying:
        the server refused this client, or the TLS handshake failed."""
        server = self.opts.server
        if code in _PERMANENT or (
            code == grpc.StatusCode.RESOURCE_EXHAUSTED and not _is_rate_limit(code, details)
        ):
            raise TransportError(f"server {server} refused: {details}")
        if self.opts.ca_cert_pem is not None:
            cause = tls_cause(details)
            if cause is not None:
                raise TransportError(f"cannot connect to {server}: {cause}")
        elif plain_against_tls(details) and speaks_tls(server):
            raise TransportError(
                f"cannot connect to {server}: TLS: the server speaks TLS and this client "
                "connected without it (pass --ca-cert with the server's certificate)"
            )

    def _join(self, stub: pb_grpc.FederationStub, wait_s: float | None) -> pb.JoinReply:
        reply = stub.Join(
            pb.JoinRequest(
                protocol_version=PROTOCOL_VERSION,
                token=self.opts.token,
                client_id=self.opts.client_id,
                device=self.opts.device,
                meter=self.meter.name,
                num_samples=len(self.data.train.y) if self.data is not None else 0,
            ),
            wait_for_ready=wait_s is not None,
            timeout=30.0 if wait_s is None else max(0.1, min(10.0, wait_s)),
        )
        if reply.config_json != self._config_json:
            self._local = build_local(reply, self.data, self.opts.client_id, self.opts.attack)
            self._config_json = reply.config_json
        log.info(
            "joined %s as client %d (device %s)",
            self.opts.server,
            self.opts.client_id,
            reply.device,
        )
        self._device = reply.device
        self._precisions = tuple(reply.precisions)
        return reply

    def _serve_tasks(self, stub: pb_grpc.FederationStub, session_id: str) -> None:
        # A reader thread drains the stream while this thread trains, so a CANCEL of the
        # task in training is seen at once.
        stream = stub.Tasks(pb.TaskRequest(session_id=session_id))
        inbox: queue.Queue[object] = queue.Queue()
        reader = threading.Thread(
            target=self._read_stream, args=(stream, inbox), name="greenfl-tasks", daemon=True
        )
        reader.start()
        try:
            while True:
                item = inbox.get()
                if item is _STREAM_END:
                    raise _Lost("the server closed the task stream")
                if isinstance(item, grpc.RpcError):
                    raise item
                assert isinstance(item, pb.Task)
                task = item
                if task.kind == pb.Task.SHUTDOWN:
                    self.stats.shutdown_reason = task.reason
                    log.info("server ended the run: %s", task.reason)
                    return
                if task.kind == pb.Task.SECAGG:
                    if self._secagg.step(stub, task, session_id, self.stats):
                        return  # tests: this client drops out of the round here
                    continue
                if task.kind != pb.Task.FIT:
                    continue
                with self._lock:
                    if task.task_id in self._withdrawn:  # withdrawn before we got to it
                        self.stats.withdrawn += 1
                        log.info("round %d: task withdrawn by the server; skipped", task.round)
                        continue
                    self._current_task = task.task_id
                    self._cancel.clear()
                update = self._fit(task, session_id)
                with self._lock:
                    self._current_task = ""
                if update is None:
                    self.stats.withdrawn += 1
                    log.info("round %d: task withdrawn by the server; stopped", task.round)
                    continue
                self._submit(stub, update, task)
        finally:
            stream.cancel()
            reader.join(timeout=5)

    def _read_stream(self, stream: object, inbox: queue.Queue[object]) -> None:
        try:
            for task in stream:  # type: ignore[attr-defined]
                self.stats.bytes_down += task.ByteSize()
                if task.kind == pb.Task.CANCEL:
                    with self._lock:
                        self._withdrawn.add(task.task_id)
                        if task.task_id == self._current_task:
                            self._cancel.set()
                    continue
                inbox.put(task)
        except grpc.RpcError as exc:  # the link broke (or we cancelled the stream)
            inbox.put(exc)
        finally:
            inbox.put(_STREAM_END)

    def _submit(self, stub: pb_grpc.FederationStub, update: pb.Update, task: pb.Task) -> None:
        size = update.ByteSize()
        meta = ((SESSION_KEY, update.session_id),)  # checked before the payload is parsed
        try:
            ack = stub.SubmitUpdate(update, timeout=120, metadata=meta)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:  # type: ignore[attr-defined]
                raise
            # Too large for the server's gRPC limit: say so, so the round need not time out.
            err = pb.Update(
                protocol_version=PROTOCOL_VERSION,
                session_id=update.session_id,
                client_id=update.client_id,
                round=update.round,
                task_id=update.task_id,
                error=f"update of {size} bytes exceeds the server's message limit",
            )
            ack = stub.SubmitUpdate(err, timeout=30, metadata=meta)
        self.stats.bytes_up += size
        self.stats.rounds += 1
        if not ack.accepted:
            self.stats.rejected += 1
            log.warning("round %d: update not accepted: %s", task.round, ack.reason)

    # ---- one task ----------------------------------------------------------------
    def _fit(self, task: pb.Task, session_id: str) -> pb.Update | None:
        """The update for one task, or None if the server withdrew it meanwhile."""
        assert self._local is not None
        done = train_task(
            task,
            session_id,
            self._local,
            self.opts,
            self.meter,
            self._device,
            self._secagg,
            self._cancel,
            self._precisions,
        )
        if done is None:
            return None
        if done.row is not None:
            self._record(done)
        return done.update

    def _record(self, done: Trained) -> None:
        """A trained round into the stats, and to ``on_round``."""
        assert done.row is not None
        if done.energy_j is not None:
            self.stats.energy_j = (self.stats.energy_j or 0.0) + done.energy_j
        self.stats.compute_s += done.compute_s
        self.stats.history.append(done.row)
        if self.on_round is not None:
            self.on_round(done.row)
