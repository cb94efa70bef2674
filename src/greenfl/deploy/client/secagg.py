"""Secure aggregation on a deployed client: with secure aggregation on, a FIT task's update
carries fresh public keys instead of the delta, and the client keeps the delta until the
server's SECAGG steps ask for its encrypted shares, its masked input and its unmasking
shares (greenfl.secagg.SecAggClient). The delta itself never leaves the client."""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np
import torch

from greenfl.deploy import greenfl_pb2 as pb
from greenfl.deploy import greenfl_pb2_grpc as pb_grpc
from greenfl.deploy.secagg_wire import (
    keys_from_pb,
    params_from_pb,
    revealed_to_pb,
    shares_from_pb,
    shares_to_pb,
)
from greenfl.deploy.wire import SESSION_KEY
from greenfl.secagg import SecAggClient, SecAggError
from greenfl.secagg.messages import KeyBook, ShareBundle, UnmaskRequest

log = logging.getLogger("greenfl.join")
Stage = pb.SecAggStep


class _Stats(Protocol):
    bytes_up: int


class SecAggParticipant:
    """One client's secure-aggregation state: the round in progress (one at a time)."""

    def __init__(self, client_id: int, drop_after: str = "") -> None:
        self.client_id = client_id
        # Tests only: "share" or "mask": drop out (disconnect) after answering that step.
        self.drop_after = drop_after
        self._task_id = ""
        self._proto: SecAggClient | None = None
        self._delta: np.ndarray | None = None
        self._weight = 1.0

    def keys_for(self, task: pb.Task, delta: torch.Tensor) -> pb.SecAggKeys:
        """Start the task's aggregation: fresh keys to send with the update."""
        self._task_id = task.task_id
        self._proto = SecAggClient(self.client_id)
        self._delta = delta.detach().cpu().numpy().astype(np.float64)
        adv = self._proto.advertise()
        return pb.SecAggKeys(c_pk=adv.c_pk, s_pk=adv.s_pk)

    def step(
        self, stub: pb_grpc.FederationStub, task: pb.Task, session_id: str, stats: _Stats
    ) -> bool:
        """Answer one SECAGG step; True when this client should now drop out (tests)."""
        msg = pb.SecAggMessage(
            session_id=session_id,
            client_id=self.client_id,
            round=task.round,
            task_id=task.task_id,
            stage=task.secagg.stage,
        )
        try:
            self._answer(task, msg)
        except SecAggError as exc:
            log.warning("round %d: secure aggregation stopped here: %s", task.round, exc)
            msg.error = str(exc)
        stats.bytes_up += msg.ByteSize()
        ack = stub.SecAggSubmit(msg, timeout=60, metadata=((SESSION_KEY, session_id),))
        if not ack.accepted and not msg.error:
            log.warning("round %d: secure-aggregation answer not taken: %s", task.round, ack.reason)
        stage = {Stage.SHARE_KEYS: "share", Stage.MASKED_INPUT: "mask"}.get(task.secagg.stage)
        return bool(self.drop_after) and stage == self.drop_after

    def _answer(self, task: pb.Task, msg: pb.SecAggMessage) -> None:
        s = task.secagg
        proto = self._proto
        if proto is None or task.task_id != self._task_id or self._delta is None:
            raise SecAggError("no secure aggregation in progress for this task")
        if s.stage == Stage.SHARE_KEYS:
            self._weight = float(s.params.weight)
            if not 0 < self._weight <= 1:
                raise SecAggError(f"weight {self._weight} outside (0, 1]")
            book = KeyBook(params_from_pb(s.params), tuple(keys_from_pb(n) for n in s.neighbours))
            msg.shares.extend(shares_to_pb(proto.share_keys(book).shares))
        elif s.stage == Stage.MASKED_INPUT:
            bundle = ShareBundle(tuple(int(i) for i in s.sharers), shares_from_pb(s.shares))
            # Public weights: the server divides the sum by the survivors' total weight.
            x = self._delta * self._weight
            msg.masked = proto.masked_input(bundle, x).data
        elif s.stage == Stage.UNMASK:
            req = UnmaskRequest(
                tuple(int(i) for i in s.survivors), tuple(int(i) for i in s.dropped)
            )
            r = proto.unmask(req)
            msg.self_shares.extend(revealed_to_pb(r.self_shares))
            msg.key_shares.extend(revealed_to_pb(r.key_shares))
            self._proto, self._delta = None, None  # the round is over for this client
        else:
            raise SecAggError(f"unknown secure-aggregation stage {s.stage}")
