"""Secure aggregation on the server of a deployment: after a round's fit phase, the clients
whose updates were accepted (they trained and sent keys, no delta) go through the three
remaining message rounds of greenfl.secagg, pushed on their task streams and answered with
``SecAggSubmit``. The server ends with the sum of their weighted updates and nothing else.

Weights are public: each client masks delta x w / W, with w its (capped) sample count and W
the round's largest, and the server divides the unmasked sum by sum(w) / W. Every surviving
client's report then carries that weighted mean as its delta, so FedAvg (any weighted mean)
of the reports is the mean itself; robust rules (trimmed mean, median) and per-client norm
checks see identical deltas and cannot act: a server that sees only the sum cannot judge
one update. Clipping each value to [-clip_range, clip_range] bounds any one client's pull.

What the server can still check is the unmasked sum (greenfl.secagg.protocol.check_sum):
every value within k x clip_range for k survivors, the clip every honest client's encoding
applies; and, with ``max_norm`` (deploy.max_update_norm, the bound a plain update is held
to), the sum's L2 norm within sum_c (w_c / W) x max_norm, which holds when every client's
delta is within max_norm. A sum outside either is refused whole: every survivor's report
fails with the reason, and the round aggregates nothing."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass

import grpc
import numpy as np
import torch

from greenfl.core.errors import ConfigError
from greenfl.core.messages import ClientReport
from greenfl.deploy import greenfl_pb2 as pb
from greenfl.deploy.secagg_wire import (
    keys_to_pb,
    params_to_pb,
    revealed_from_pb,
    shares_from_pb,
    shares_to_pb,
)
from greenfl.deploy.server.listener import session_of
from greenfl.deploy.server.plausible import bounded_weights
from greenfl.deploy.server.sessions import Pending, Session
from greenfl.secagg import FixedPoint, RoundParams, SecAggError, SecAggServer, SumOutOfRange
from greenfl.secagg.graph import default_threshold, degree
from greenfl.secagg.messages import AdvertiseKeys, MaskedInput, ShareKeys, UnmaskResponse

log = logging.getLogger("greenfl.serve")
Stage = pb.SecAggStep


@dataclass(frozen=True)
class SecAggOptions:
    """How a deployment runs secure aggregation (``GrpcTransport(secagg=...)``)."""

    neighbours: int | None = None  # SecAgg+ k; None: the complete graph
    threshold: int | None = None  # t; None: a majority of each neighbourhood
    clip_range: float = 4.0  # per value, after weighting
    # deploy.max_update_norm: a plain update above it is rejected; under secure aggregation
    # the sum of the weighted deltas must be within sum (w / W) x max_norm. None: no check.
    max_norm: float | None = None
    stage_timeout_s: float = 30.0  # how long each message round waits for answers


def check_secagg(opts: SecAggOptions | None, codec_name: str) -> None:
    if opts is not None and codec_name != "identity":
        raise ConfigError(
            f"secure aggregation needs compression codec 'identity', not {codec_name!r}: "
            "masked values are uniform 32-bit words and do not compress"
        )


def keys_of(req: pb.Update) -> tuple[bytes, bytes] | None:
    """The public keys an update carries under secure aggregation, if any."""
    if not req.HasField("secagg_keys"):
        return None
    return bytes(req.secagg_keys.c_pk), bytes(req.secagg_keys.s_pk)


class SecAggRounds:
    """The server's side of secure aggregation, one round at a time. Shares the transport's
    condition variable and its live sessions (by client id)."""

    def __init__(
        self,
        opts: SecAggOptions,
        cond: threading.Condition,
        sessions: dict[str, Session],
        by_client: dict[int, Session],
    ) -> None:
        self.opts = opts
        self._cond = cond
        self._sessions = sessions
        self._by_client = by_client
        self._stage = Stage.STAGE_UNSPECIFIED
        self._tasks: dict[int, str] = {}  # client -> its FIT task id, this round
        self._inbox: dict[int, pb.SecAggMessage] = {}
        self.bytes_up: dict[int, int] = {}
        self.bytes_down: dict[int, int] = {}

    def marker(self) -> pb.SecAggStep:
        """What a FIT task carries: train, then send keys instead of the delta."""
        return pb.SecAggStep(stage=Stage.ADVERTISE)

    # ---- gRPC threads ---------------------------------------------------------------
    def rpc(self, req: pb.SecAggMessage, context: grpc.ServicerContext) -> pb.Ack:
        """(any thread) One client's answer to the open step; anything else is refused."""
        size = req.ByteSize()
        with self._cond:
            sess = self._sessions.get(req.session_id)
            if sess is None or req.session_id != session_of(context):
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown session; join again")
            cid = sess.client_id
            if req.stage != self._stage or self._tasks.get(cid) != req.task_id:
                return pb.Ack(accepted=False, reason="no open secure-aggregation step")
            if cid in self._inbox:
                return pb.Ack(accepted=False, reason="duplicate answer")
            self._inbox[cid] = req
            self.bytes_up[cid] = self.bytes_up.get(cid, 0) + size
            self._cond.notify_all()
        if req.error:
            log.warning("client %d cannot go on with secure aggregation: %s", cid, req.error[:200])
        return pb.Ack(accepted=not req.error, reason=req.error[:200])

    # ---- the round loop's thread ----------------------------------------------------
    def aggregate(
        self,
        round_idx: int,
        reports: dict[int, ClientReport],
        pending: dict[int, Pending],
        vector_length: int,
        sample_factor: float | None,
        declared: Collection[int] = (),
        largest_partition: int = 0,
    ) -> dict[int, ClientReport]:
        """The round's reports after secure aggregation: survivors carry the weighted mean,
        clients that dropped out of it are failed, and each row counts its extra bytes. The
        weights are bounded as ``plausible.bound_round`` bounds them (``declared``: clients
        weighing by their own claimed size), here before masking: after it the server can
        no longer reweigh one client's part of the sum."""
        ids = sorted(c for c, p in pending.items() if reports[c].status == "completed")
        self._tasks = {c: pending[c].task_id for c in ids}
        self.bytes_up, self.bytes_down = {}, {}
        start = time.monotonic()
        try:
            weights = bounded_weights(
                [reports[c].num_samples for c in ids],
                [c in declared for c in ids],
                sample_factor,
                largest_partition,
            )
            w = {c: float(n) for c, n in zip(ids, weights, strict=True)}
            mean, survivors = self._run(round_idx, ids, pending, vector_length, w)
        except SumOutOfRange as exc:
            log.warning("round %d: secure aggregation refused the sum: %s", round_idx, exc)
            mean, survivors = None, ()
            why = f"secure aggregation refused the round: {exc}"
        except SecAggError as exc:
            log.warning("round %d: secure aggregation failed: %s", round_idx, exc)
            mean, survivors = None, ()
            why = f"secure aggregation failed: {exc}"
        finally:
            with self._cond:
                self._stage, self._tasks = Stage.STAGE_UNSPECIFIED, {}
        log.info(
            "round %d: secure aggregation of %d of %d updates in %.3f s",
            round_idx,
            len(survivors),
            len(ids),
            time.monotonic() - start,
        )
        out = dict(reports)
        for c in ids:
            r = reports[c]._replace(
                bytes_up=reports[c].bytes_up + self.bytes_up.get(c, 0),
                bytes_down=reports[c].bytes_down + self.bytes_down.get(c, 0),
            )
            if mean is not None and c in survivors:
                out[c] = r._replace(delta=mean, num_samples=max(1, int(w[c])))
            else:
                if mean is not None:
                    why = "secure aggregation: no masked input from this client"
                out[c] = r._replace(status="failed", reason=why, delta=None)
        return out

    def _run(
        self,
        round_idx: int,
        ids: list[int],
        pending: dict[int, Pending],
        n_values: int,
        weight: dict[int, float],
    ) -> tuple[torch.Tensor, tuple[int, ...]]:
        o = self.opts
        if len(ids) < 2:
            raise SecAggError(f"{len(ids)} accepted update(s): nothing to hide it among")
        t = o.threshold or default_threshold(degree(len(ids), o.neighbours))
        params = RoundParams(
            f"greenfl|r{round_idx}|{secrets.token_hex(8)}".encode(),
            n_values,
            FixedPoint.for_clients(len(ids), o.clip_range),
            t,
            o.neighbours,
            secrets.randbits(63),
        )
        scale = max(weight.values())
        server = SecAggServer(params)
        keys = [AdvertiseKeys(c, *pending[c].secagg_keys) for c in ids if pending[c].secagg_keys]
        books = server.key_books(keys)
        got = self._step(
            round_idx,
            Stage.SHARE_KEYS,
            {
                c: pb.SecAggStep(
                    stage=Stage.SHARE_KEYS,
                    params=params_to_pb(params, weight[c] / scale),
                    neighbours=[keys_to_pb(k) for k in b.neighbours],
                )
                for c, b in books.items()
            },
        )
        bundles = server.route_shares(
            ShareKeys(c, shares_from_pb(m.shares)) for c, m in got.items()
        )
        got = self._step(
            round_idx,
            Stage.MASKED_INPUT,
            {
                c: pb.SecAggStep(
                    stage=Stage.MASKED_INPUT, sharers=b.sharers, shares=shares_to_pb(b.shares)
                )
                for c, b in bundles.items()
            },
        )
        requests = server.unmask_requests(MaskedInput(c, m.masked) for c, m in got.items())
        got = self._step(
            round_idx,
            Stage.UNMASK,
            {
                c: pb.SecAggStep(stage=Stage.UNMASK, survivors=r.survivors, dropped=r.dropped)
                for c, r in requests.items()
            },
        )
        # Each client masks delta x w / W: within max_norm x w / W when its delta is within
        # max_norm (the clients are not told max_norm: the bound is the server's check).
        norm_bounds = (
            None if o.max_norm is None else {c: o.max_norm * weight[c] / scale for c in ids}
        )
        agg = server.aggregate(
            [
                UnmaskResponse(c, revealed_from_pb(m.self_shares), revealed_from_pb(m.key_shares))
                for c, m in got.items()
            ],
            norm_bounds,
        )
        total_w = sum(weight[c] for c in agg.survivors) / scale
        mean = torch.from_numpy((agg.total / total_w).astype(np.float32))
        return mean, agg.survivors

    def _step(
        self, round_idx: int, stage: int, steps: dict[int, pb.SecAggStep]
    ) -> dict[int, pb.SecAggMessage]:
        """Push one step to each client, and collect the answers until everyone answered,
        left, or the stage timed out. Answers carrying an error count as none."""
        deadline = time.monotonic() + self.opts.stage_timeout_s
        with self._cond:
            self._stage, self._inbox = stage, {}
            for c, step in steps.items():
                sess = self._by_client.get(c)
                if sess is None or not sess.open:
                    continue
                task = pb.Task(
                    kind=pb.Task.SECAGG, round=round_idx, task_id=self._tasks[c], secagg=step
                )
                self.bytes_down[c] = self.bytes_down.get(c, 0) + task.ByteSize()
                sess.queue.append(task)
            self._cond.notify_all()

            def waiting() -> bool:
                return any(
                    c not in self._inbox and (s := self._by_client.get(c)) is not None and s.open
                    for c in steps
                )

            while waiting():
                left = deadline - time.monotonic()
                if left <= 0:
                    log.warning(
                        "round %d: secure aggregation step %s timed out",
                        round_idx,
                        Stage.Stage.Name(stage),
                    )
                    break
                self._cond.wait(min(left, 1.0))
            got, self._inbox = self._inbox, {}
            self._stage = Stage.STAGE_UNSPECIFIED
        return {c: m for c, m in got.items() if not m.error}
