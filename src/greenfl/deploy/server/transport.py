"""The round loop's side of a deployment: ``GrpcTransport``, the ClientTransport whose
clients are real processes that joined over gRPC (``FederationServicer`` keeps them).

Clients connect (``Join``, then a long-lived ``Tasks`` stream) and stay connected between
rounds. ``dispatch`` queues a task on its client's stream; ``collect`` waits for the updates
until the round's target of accepted updates is in (with over-selection the round closes
early, and the late clients' tasks are withdrawn with a CANCEL and reported as
``straggler``s), every client answered or disconnected, or the round timed out. A client
that disconnects or times out is ``failed``; an update that fails validation is ``rejected``
with its reason: ledger rows like any other, so nothing past this seam knows. The round's
own defences (``plausible.bound_round``, quarantine, secure aggregation) then act on the
whole batch. One round is open at a time: ``fit`` (the Transport base's) is a round.

With sub-models (docs/submodels.md) a task's ``instructions.width`` picks the slice of the
global model its client is sent, and the slice's delta is what its update must be.

With sparse training (docs/submodels.md, "Sparse training"), once the server has pruned, a
task carries the global model's kept values (``Task.sparse``: the mask's version, and the
mask itself to a client that does not hold that version), its update must be exactly the
kept coordinates of its delta (the round's ``UpdateRules`` say how many), and ``collect``
scatters each into the full vector for the run's MaskedStrategy. A client whose task
failed is sent the mask again: it may not hold it (a restarted process)."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import grpc
import numpy as np
import torch

from greenfl.clients.transport import Completion, FitProgress, ProgressFn, Task, Transport
from greenfl.clients.validate import PROTOCOL_VERSION
from greenfl.compression.base import Codec
from greenfl.core.errors import TransportError
from greenfl.core.messages import ClientReport, FitInstructions
from greenfl.core.params import ParamSpec
from greenfl.deploy import greenfl_pb2 as pb
from greenfl.deploy.security import TlsFiles
from greenfl.deploy.server.checks import UpdateRules, check_message_limit
from greenfl.deploy.server.listener import SessionGate, listen
from greenfl.deploy.server.plausible import RoundModel, bound_round, round_model
from greenfl.deploy.server.quarantine import Quarantine
from greenfl.deploy.server.rounds import ClosedRound, log_early_close
from greenfl.deploy.server.secagg import SecAggOptions, check_secagg
from greenfl.deploy.server.servicer import FederationServicer, ModelInput
from greenfl.deploy.server.settings import DeploySettings
from greenfl.deploy.widths import WidthSlice
from greenfl.deploy.wire import instructions_to_pb, kept_spec, params_to_pb
from greenfl.fleet.population import Population
from greenfl.sparse.server import SparseTraining

log = logging.getLogger("greenfl.serve")


@dataclass
class _OpenRound:
    """The round between its first ``dispatch`` and its ``collect``."""

    round_idx: int
    opened_at: float  # monotonic; the round's timeout counts from here
    tasks: list[Task] = field(default_factory=list)  # in dispatch order
    unsent: dict[int, ClientReport] = field(default_factory=dict)  # no task: quarantined, gone


class GrpcTransport(Transport):
    """A ClientTransport over gRPC; with ``secagg``, secure aggregation
    (docs/secure-aggregation.md). ``start`` listens, ``close`` ends the run for the
    clients, ``stop`` stops listening without ending it (they wait for ``serve --resume``)."""

    def __init__(
        self,
        settings: DeploySettings,
        codec: Codec,
        address: str,
        token: str | None = None,
        tls: TlsFiles | None = None,
        secagg: SecAggOptions | None = None,
    ) -> None:
        check_secagg(secagg, codec.name)
        self.settings = settings
        self.codec = codec
        self.address = address
        self.token = token
        self.tls = tls
        self.secagg = secagg
        self.flops_per_sample = 0.0  # the model's training FLOPs per sample, once started
        self.servicer: FederationServicer | None = None
        self.server: grpc.Server | None = None
        self.port: int | None = None
        self._spec: ParamSpec | None = None
        self._quarantine = Quarantine(settings.quarantine_rounds)
        self._target: int | None = None  # accepted updates that close the next round
        self._started_rounds = False
        self._round: _OpenRound | None = None
        # The FIT message of the open round at each width, encoded once per width
        self._bases: dict[float, tuple[int, torch.Tensor, FitInstructions, pb.Task]] = {}
        self._widths: dict[float, WidthSlice] = {}  # sub-models: each width's slice
        self._sparse: SparseTraining | None = None  # sparse training: the server's mask
        self._rules: UpdateRules | None = None  # what an update of a dense round must match

    def start(
        self,
        population: Population,
        spec: ParamSpec,
        model_input: ModelInput | None = None,
        flops_per_sample: float = 0.0,
        widths: Mapping[float, WidthSlice] | None = None,
        sparse: SparseTraining | None = None,
    ) -> int:
        """Listen on ``address``; returns the bound port (useful with port 0).
        ``model_input``: the model's (input shape, number of classes), told to clients that
        bring their own data so they can check it before training. ``widths``: with
        sub-models, each width's slice (``greenfl.deploy.widths.wire_slices``).
        ``sparse``: with sparse training, the run's (its MaskedStrategy's) mask state."""
        s = self.settings
        check_message_limit(spec.numel, s.max_message_bytes)
        self._spec = spec
        self.flops_per_sample = flops_per_sample
        self._widths = dict(widths or {})
        self._sparse = sparse
        rules = self._rules = UpdateRules(
            self.codec,
            spec,
            s.max_message_bytes,
            s.max_update_norm,
            self.secagg is not None,
            widths=self._widths,
        )
        servicer = self._new_servicer(population, rules, model_input)
        # One worker thread per connected client (its Tasks stream) plus room for calls.
        workers = min(population.size, 4096) + 16
        gate = SessionGate(servicer.knows_session, spec.numel, s.max_message_bytes)
        self.server, self.port = listen(
            self.address, servicer, s.max_message_bytes, workers, self.tls, gate
        )
        self.servicer = servicer
        return self.port

    def _new_servicer(
        self, population: Population, rules: UpdateRules, model_input: ModelInput | None
    ) -> FederationServicer:
        """The servicer ``start`` serves (asynchronous serving has its own)."""
        s = self.settings
        return FederationServicer(s, population, rules, self.token, model_input, self.secagg)

    def stop(self) -> None:
        """Stop serving without ending the run: clients keep retrying, so a resumed server
        finds them again."""
        if self.server is not None:
            self.server.stop(grace=0.5).wait()
            self.server = None

    def close(self, reason: str = "the run is over") -> None:
        """Tell every connected client the run is over, then stop serving."""
        if self.servicer is not None:
            self.servicer.end(reason)
        self.stop()

    # ---- the clients seam -----------------------------------------------------------
    def available_clients(self) -> np.ndarray:
        """The clients connected now: the loop selects only among them. Before the first
        round this waits for ``deploy.min_clients``, later for at least one."""
        need = 1 if self._started_rounds else self.settings.min_clients
        ids = self._hub.wait_for_clients(need)
        self._started_rounds = True
        return np.asarray(ids, dtype=np.int64)

    def expect_updates(self, target: int) -> None:
        """The next round may close as soon as ``target`` updates were accepted
        (``train.clients_per_round``; the cohort holds more with over-selection)."""
        self._target = target if self.settings.early_close else None

    def dispatch(self, task: Task) -> None:
        """Queue ``task`` on its client's stream. A client that is quarantined or not
        connected gets none: its report (failed) is settled at once."""
        hub, cid = self._hub, int(task.client_id)
        r = self._round
        if r is None:
            r = self._round = _OpenRound(task.round_idx, time.monotonic())
            self._round_rules()
        elif r.round_idx != task.round_idx:
            raise TransportError(
                f"round {task.round_idx} dispatched while round {r.round_idx} is open; "
                "a deployment runs one round at a time"
            )
        r.tasks.append(task)
        why = self._quarantine.reason(cid, task.round_idx)
        if why is None:
            msg = self._message(task)
            if not hub.hand_out(msg, cid, self._model_of(task)):
                why = "not connected when the round started"
            elif self._sparse is not None and msg.sparse.mask:
                self._sparse.held[cid] = msg.sparse.version  # it holds this mask now
        if why is not None:
            r.unsent[cid] = hub.failed(cid, why)

    def collect(
        self, until_s: float | None = None, progress: ProgressFn | None = None
    ) -> list[Completion]:
        """Close the open round and return every dispatched task's completion, in dispatch
        order. It waits until the round's target of accepted updates is in, every client
        answered or left, or the round timed out; ``until_s`` (seconds since the round's
        first dispatch) shortens that wait. What has not arrived then is withdrawn."""
        r, self._round = self._round, None
        if r is None:
            return []
        s = self.settings
        n = len(r.tasks)
        target = n if self._target is None else min(self._target, n)
        self._target = None
        limit_s = s.round_timeout_s if until_s is None else min(s.round_timeout_s, until_s)
        seen, stop = 0, False
        while not stop:
            accepted, stop = self._hub.await_updates(target, r.opened_at + limit_s, seen)
            if accepted != seen and progress is not None:
                progress(FitProgress(accepted, n))
            seen = accepted
        closed = self._hub.close_round(target, limit_s)
        reports = {**r.unsent, **closed.reports}
        if closed.accepted >= target and target < n:
            log_early_close(
                r.round_idx, closed.closed_at - r.opened_at, closed.accepted, list(reports.values())
            )
        out = self._judged(r.round_idx, [t.client_id for t in r.tasks], reports, closed)
        if self._sparse is not None and self._sparse.version > 0:
            out = [self._scattered(report) for report in out]
        return [
            Completion(t, report, self._finish_s(r, closed, t.client_id))
            for t, report in zip(r.tasks, out, strict=True)
        ]

    # ---- helpers --------------------------------------------------------------------
    def _round_rules(self) -> None:
        """The rules the opening round's updates are judged by: under a sparsity mask,
        exactly its kept values (one tensor, or the codec's payload of that many)."""
        rules, sparse = self._rules, self._sparse
        if rules is None or sparse is None:
            return
        if sparse.version > 0:
            rules = replace(rules, spec=kept_spec(sparse.kept))
        with self._hub.cond:
            self._hub.rules = rules

    def _scattered(self, report: ClientReport) -> ClientReport:
        """``report`` with its kept values in the full vector (zero elsewhere), as a
        simulated client's; a failed client is sent the mask again next time."""
        sparse = self._sparse
        assert sparse is not None
        if report.status == "failed":
            sparse.held[report.client_id] = 0
        if report.delta is None:
            return report
        return report._replace(delta=sparse.scatter(report.delta))

    def _judged(
        self,
        round_idx: int,
        order: list[int],
        reports: dict[int, ClientReport],
        closed: ClosedRound,
    ) -> list[ClientReport]:
        """The round's reports (in ``order``) after the defences that need them all."""
        s, declared = self.settings, (closed.declared, closed.largest_partition)
        secagg = self._hub.secagg
        if secagg is not None:  # the server learns only the sum of accepted updates
            reports = secagg.aggregate(
                round_idx, reports, closed.tasks, self.spec.numel, s.sample_bound_factor, *declared
            )
        # Outside secure aggregation the servicer judged each norm on arrival (its ack says
        # so); judging again at close could reject an update already acknowledged.
        norm_factor = s.norm_bound_factor if secagg is not None else None
        out = bound_round(
            [reports[cid] for cid in order], norm_factor, s.sample_bound_factor, *declared
        )
        self._quarantine.record(round_idx, out)
        return out

    @staticmethod
    def _finish_s(r: _OpenRound, closed: ClosedRound, cid: int) -> float:
        """When a task's report was settled, in seconds since the round opened."""
        p = closed.tasks.get(cid)
        at = p.answered_at if p is not None and p.answered_at is not None else r.opened_at
        return max(0.0, at - r.opened_at)

    def _message(self, task: Task) -> pb.Task:
        """The FIT task for ``task``'s client: the round's model (its width's slice, with
        sub-models) and instructions (encoded once per round and width), its own step cap
        under partial work, and a fresh task id."""
        width = task.instructions.width
        b = self._bases.get(width)
        if b is None or not _same_round(b, task):
            params, spec = task.params, self.spec
            if width != 1.0 or self._widths:
                piece = self._slice(width)
                params, spec = piece.take(task.params), piece.spec
            elif self._sparse is not None and self._sparse.version > 0:
                # only the kept values: the global model is zero elsewhere
                params = task.params[self._sparse.kept_index]
                spec = kept_spec(self._sparse.kept)
            base = pb.Task(
                kind=pb.Task.FIT,
                protocol_version=PROTOCOL_VERSION,
                round=task.round_idx,
                params=params_to_pb(params, spec),
                instructions=instructions_to_pb(task.instructions),
                seed=self.settings.seed,
                secagg=self._hub.secagg.marker() if self._hub.secagg else None,  # keys, no delta
            )
            b = (task.round_idx, task.params, task.instructions, base)
            self._bases = {w: v for w, v in self._bases.items() if v[0] == task.round_idx}
            self._bases[width] = b
        msg = pb.Task()
        msg.CopyFrom(b[3])
        cid, ins = int(task.client_id), task.instructions
        if cid in ins.client_steps:  # partial work: this client's step cap
            msg.instructions.CopyFrom(instructions_to_pb(ins.for_client(cid)))
        msg.task_id = f"r{task.round_idx}-c{cid}-{secrets.token_hex(6)}"
        sparse = self._sparse
        if sparse is not None and sparse.version > 0:
            msg.sparse.version = sparse.version
            if sparse.held[cid] != sparse.version:  # once per client and mask
                msg.sparse.mask = sparse.encoded_mask()
        return msg

    def _model_of(self, task: Task) -> Callable[[int], RoundModel]:
        """The server's model of ``task``'s round, for the samples the client will weigh:
        its work priced at its width's counted FLOPs per sample."""
        hub, s = self._hub, self.settings
        flops_per_sample = self.flops_per_sample
        if self._widths:
            flops_per_sample = self._slice(task.instructions.width).flops_per_sample
        elif self._sparse is not None:  # the kept units' smaller model, when structured
            flops_per_sample = self._sparse.flops_per_sample

        def model(n: int) -> RoundModel:
            return round_model(
                hub.population,
                int(task.client_id),
                task.instructions,
                n,
                flops_per_sample,
                s.round_timeout_s,
                s.plausibility_factor,
            )

        return model

    def _slice(self, width: float) -> WidthSlice:
        """The slice of a task's ``width``; TransportError if the server holds none."""
        piece = self._widths.get(width)
        if piece is None:
            held = ", ".join(f"{w:g}" for w in sorted(self._widths, reverse=True)) or "none"
            raise TransportError(
                f"a task asks for sub-model width {width:g}; this server holds widths {held}"
            )
        return piece

    @property
    def _hub(self) -> FederationServicer:
        if self.servicer is None:
            raise TransportError("GrpcTransport.start() was not called")
        return self.servicer

    @property
    def spec(self) -> ParamSpec:
        if self._spec is None:
            raise TransportError("GrpcTransport.start() was not called")
        return self._spec


def _same_round(base: tuple[int, torch.Tensor, FitInstructions, pb.Task], task: Task) -> bool:
    """Whether ``task`` shares the round, model (the same object, as a round dispatches
    it) and instructions that ``base`` was encoded from. Instructions compare by value: a
    round of sub-models dispatches each client its own copy, with its width."""
    return base[0] == task.round_idx and base[1] is task.params and base[2] == task.instructions
