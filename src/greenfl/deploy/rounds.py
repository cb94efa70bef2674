"""The reports a deployment's round makes for clients that did not deliver, and the
withdrawal of their tasks."""

from __future__ import annotations

from greenfl.clients.validate import PROTOCOL_VERSION
from greenfl.core.messages import ClientReport
from greenfl.deploy import greenfl_pb2 as pb
from greenfl.deploy.sessions import Pending, Session


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
