"""The reports a deployment's round makes for clients that did not deliver, and the
withdrawal of their tasks."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from greenfl.clients.validate import PROTOCOL_VERSION
from greenfl.core.messages import ClientReport
from greenfl.deploy import greenfl_pb2 as pb
from greenfl.deploy.server.sessions import Pending, Session
from greenfl.fleet.population import Population

log = logging.getLogger("greenfl.serve")


@dataclass(frozen=True)
class ClosedRound:
    """A round's tasks once it closed, each with its report; when it closed, how many
    updates it accepted, and what ``plausible.bound_round`` caps declared weights by (the
    clients weighing by their own declared size, the configured largest partition)."""

    tasks: dict[int, Pending]
    reports: dict[int, ClientReport]  # each task's, by client
    closed_at: float
    accepted: int
    declared: frozenset[int]
    largest_partition: int


def withdrawn_report(cid: int, p: Pending, closed: float, accepted: int) -> ClientReport:
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


def cancel_task(sess: Session | None, p: Pending) -> None:
    """(lock held) Withdraw a task: drop it if still queued, else tell the client to
    stop working on it, so a straggler does not burn energy the ledger never sees."""
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


def failed_report(cid: int, num_samples: int, bytes_down: int, reason: str) -> ClientReport:
    """A client that sent no usable update: disconnected, timed out, or not connected."""
    return ClientReport(
        client_id=int(cid),
        status="failed",
        reason=reason,
        delta=None,
        num_samples=num_samples,
        flops=0.0,
        loss=float("nan"),
        bytes_up=0,
        bytes_down=bytes_down,
    )


def next_task(sess: Session, pending: Pending | None, shutdown: str | None) -> pb.Task:
    """(lock held) What a client's stream sends next: its queued task (a FIT task's
    delivery time is noted, for a straggler's worked time), the end of the run, or a
    keep-alive."""
    if sess.queue:
        task = sess.queue.popleft()
        if task.kind == pb.Task.FIT and pending is not None and pending.task_id == task.task_id:
            pending.delivered_at = time.monotonic()
        return task
    if shutdown is not None:
        return pb.Task(kind=pb.Task.SHUTDOWN, protocol_version=PROTOCOL_VERSION, reason=shutdown)
    return pb.Task(kind=pb.Task.KEEPALIVE, protocol_version=PROTOCOL_VERSION)


def late_reason(open_task: Pending | None, last_round: Pending | None, req: pb.Update) -> str:
    """(lock held) Why an update has no open task: a duplicate of one already judged in the
    open round, or its round closed without it."""
    if open_task is not None and open_task.task_id == req.task_id and open_task.report is not None:
        return f"duplicate: round {open_task.round_idx} already has this task's update"
    for p in (open_task, last_round):
        if p is not None and p.task_id == req.task_id and p.report is not None:
            return f"too late: round {p.round_idx} closed ({p.report.reason or 'done'})"
    return "no open task with this id"


def accepted_updates(pending: dict[int, Pending]) -> int:
    """(lock held) Updates of the open round that passed validation."""
    return sum(p.report is not None and p.report.status == "completed" for p in pending.values())


def round_closes(pending: dict[int, Pending], target: int) -> bool:
    """(lock held) Enough updates accepted, or nobody left to wait for."""
    if accepted_updates(pending) >= target:
        return True
    return all(p.report is not None for p in pending.values())


def log_early_close(
    round_idx: int, open_s: float, accepted: int, reports: list[ClientReport]
) -> None:
    """One line for a round that closed on its target, before every client answered."""
    log.info(
        "round %d closed after %.3f s with %d of %d updates; withdrew %d task(s)",
        round_idx,
        open_s,
        accepted,
        len(reports),
        sum(r.status == "straggler" for r in reports),
    )


def unanswered_report(
    cid: int,
    p: Pending,
    closed: float,
    accepted: int,
    target: int,
    timeout_s: float,
    pop: Population,
) -> ClientReport:
    """(lock held) The report of a client with no update when the round closed: withdrawn
    (a straggler) if the round had its target, else timed out."""
    if accepted >= target:
        return withdrawn_report(cid, p, closed, accepted)
    reason = f"timeout: no update within {timeout_s:g} s"
    log.warning("client %d in round %d: %s", cid, p.round_idx, reason)
    return failed_report(cid, int(pop.num_samples[cid]), p.bytes_down, reason)


def declared_of(
    closed: Mapping[int, Pending], sessions: Mapping[str, Session], sizes: np.ndarray | None
) -> tuple[frozenset[int], int]:
    """(lock held) The round's clients that weigh by their own declared size (local data),
    and the configured dataset's largest partition: what plausible.bound_round caps a
    declared weight at."""
    declared = frozenset(
        cid
        for cid, p in closed.items()
        if (s := sessions.get(p.session_id)) is not None and s.num_samples > 0
    )
    return declared, int(sizes.max()) if sizes is not None and sizes.size else 0
