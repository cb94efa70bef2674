"""A real client: joins a ``greenfl serve`` server, trains on its own data when asked, and
reports its update and footprint.

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
from dataclasses import dataclass, field

import grpc
import torch

from greenfl.clients.trainer import client_seed, train_one
from greenfl.clients.validate import PROTOCOL_VERSION
from greenfl.core.errors import GreenflError, TransportError, UpdateRejected
from greenfl.data.local_dir import LocalDirDataset
from greenfl.deploy import greenfl_pb2 as pb
from greenfl.deploy import greenfl_pb2_grpc as pb_grpc
from greenfl.deploy.client_local import ClientAttack, Local, build_local
from greenfl.deploy.secagg_client import SecAggParticipant
from greenfl.deploy.security import tls_failure
from greenfl.deploy.wire import (
    SESSION_KEY,
    encoded_to_pb,
    instructions_from_pb,
    params_from_pb,
    params_to_pb,
)
from greenfl.footprint.measurement import Meter
from greenfl.footprint.meters import best_meter
from greenfl.models.evaluate import evaluate

log = logging.getLogger("greenfl.join")

# Refusals that retrying cannot fix: the client exits instead of reconnecting.
_PERMANENT = (
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.PERMISSION_DENIED,
)


@dataclass(frozen=True)
class ClientOptions:
    server: str
    client_id: int
    token: str = ""
    device: str = ""
    ca_cert_pem: bytes | None = None  # set: TLS, trusting this CA (or self-signed cert)
    tls_server_name: str | None = None  # the name the server's certificate is checked for
    max_message_mb: float = 256.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    retry_for_s: float = 120.0  # give up after this long without reaching the server
    # Tests and demos only: sleep this long inside each task's measured window, as a slow
    # device would (a withdrawn task ends the sleep).
    test_delay_s: float = 0.0
    # Tests only: "share" or "mask": drop out of secure aggregation after that step.
    test_secagg_drop_after: str = ""
    # Tests and demos (greenfl join --attack): a malicious client poisoning its data or
    # its updates, as the simulated attacks do (greenfl.attacks).
    attack: ClientAttack = field(default_factory=lambda: ClientAttack("none"))


@dataclass
class ClientStats:
    rounds: int = 0
    rejected: int = 0
    withdrawn: int = 0  # tasks the server withdrew (their round closed without this client)
    bytes_up: int = 0
    bytes_down: int = 0
    compute_s: float = 0.0
    energy_j: float | None = None  # measured; None where the meter cannot measure energy
    reconnects: int = 0
    shutdown_reason: str = ""
    history: list[dict[str, object]] = field(default_factory=list)


class _Lost(Exception):
    """The server went away; reconnect."""


_STREAM_END = object()  # the task stream ended (put on the inbox by the reader thread)


class FederatedClient:
    """``run()`` blocks until the server ends the run; returns what this client did."""

    def __init__(
        self,
        opts: ClientOptions,
        meter: Meter | None = None,
        on_round: Callable[[dict[str, object]], None] | None = None,
        data: LocalDirDataset | None = None,
    ) -> None:
        """``data``: the client's own data (``LocalDirDataset.load(DIR)``, already checked
        on its own); None: partition ``client_id`` of the run's configured dataset."""
        self.opts = opts
        self.meter = meter if meter is not None else best_meter()
        self.on_round = on_round
        self.data = data
        self.stats = ClientStats()
        self._local: Local | None = None
        self._config_json = ""
        self._device = opts.device
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
        while True:
            joined = False
            try:
                with self._channel() as channel:
                    stub = pb_grpc.FederationStub(channel)
                    # The first try of an outage fails at once when nothing listens, so the
                    # user hears about it now; later tries wait a while for the server to
                    # come up (it may be starting, or restarting with --resume).
                    left = None
                    if unreachable_since is not None:
                        left = unreachable_since + self.opts.retry_for_s - time.monotonic()
                    reply = self._join(stub, wait_s=left)
                    joined = True
                    delay = self.opts.backoff_initial_s
                    unreachable_since = None
                    self._serve_tasks(stub, reply.session_id)
                    return self.stats
            except grpc.RpcError as exc:
                code = exc.code()  # type: ignore[attr-defined]
                details = exc.details()  # type: ignore[attr-defined]
                if not joined and code in _PERMANENT:
                    raise TransportError(f"server {self.opts.server} refused: {details}") from None
                tls = tls_failure(details or "") if self.opts.ca_cert_pem is not None else None
                if tls is not None:  # no retry mends a certificate
                    raise TransportError(f"cannot connect to {self.opts.server}: {tls}") from None
                if joined:
                    log.warning(
                        "connection to %s lost: %s %s", self.opts.server, code.name, details
                    )
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

    # ---- one task -------------------------------------------------------------------
    def _fit(self, task: pb.Task, session_id: str) -> pb.Update | None:
        """The update for one task, or None if the server withdrew it meanwhile."""
        local = self._local
        assert local is not None
        cid = self.opts.client_id
        update = pb.Update(
            protocol_version=PROTOCOL_VERSION,
            session_id=session_id,
            client_id=cid,
            round=task.round,
            task_id=task.task_id,
            num_samples=len(local.y),
        )
        try:
            params = params_from_pb(task.params, local.spec)
        except UpdateRejected as exc:
            update.error = f"the server's parameters do not fit the local model: {exc}"
            return update
        ins = instructions_from_pb(task.instructions)
        seed = client_seed(int(task.seed), int(task.round), cid)
        test_accuracy = None
        if local.test is not None:  # how the global model does on this client's own data
            test_accuracy, _ = evaluate(local.model, params, local.test)
        token = self.meter.begin()
        if self.opts.test_delay_s > 0:
            self._cancel.wait(self.opts.test_delay_s)
        if self._cancel.is_set():
            self.meter.end(token)
            return None
        result = train_one(
            local.model, params, local.x, local.y, cid, ins, seed, stop=self._cancel.is_set
        )
        measured = self.meter.end(token)
        if self._cancel.is_set():
            return None
        k = local.cfg.train.clients_per_round
        result = self.opts.attack.on_update(int(task.round), result, int(task.seed), k)
        flops = local.flops_per_sample * result.samples_processed
        try:
            if task.HasField("secagg"):  # secure aggregation: keys now, the delta masked later
                update.secagg_keys.CopyFrom(self._secagg.keys_for(task, result.delta))
            elif local.codec.name == "identity":
                update.tensors.tensors.extend(params_to_pb(result.delta, local.spec))
            else:
                # The same generator as a simulated client, so stochastic rounding matches.
                gen = torch.Generator().manual_seed(seed + 1)
                update.encoded.CopyFrom(encoded_to_pb(local.codec.encode(result.delta, cid, gen)))
        except GreenflError as exc:
            update.error = f"cannot encode the update: {exc}"
        update.loss = result.loss
        fp = update.footprint
        fp.flops = flops
        fp.compute_s = measured.elapsed_s
        fp.estimated = measured.estimated
        fp.device = self._device
        fp.meter = self.meter.name
        if measured.energy_j is not None:
            fp.energy_j = measured.energy_j
            self.stats.energy_j = (self.stats.energy_j or 0.0) + measured.energy_j
        self.stats.compute_s += measured.elapsed_s
        row: dict[str, object] = {
            "round": int(task.round),
            "num_samples": len(local.y),
            "loss": result.loss,
            "compute_s": measured.elapsed_s,
            "energy_j": measured.energy_j,
            "bytes_down": task.ByteSize(),
            "bytes_up": update.ByteSize(),
            "estimated": measured.estimated,
            "local_test_accuracy": test_accuracy,
        }
        self.stats.history.append(row)
        if self.on_round is not None:
            self.on_round(row)
        return update
