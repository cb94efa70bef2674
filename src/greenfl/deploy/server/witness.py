"""What the server saw of each client's tasks, and what it makes of their claims: its own
observations (claims.Observation), the device classes' peer figures, the run's reported
losses, the replay guard, and disputes logged once per client. The servicer calls it under
its lock, except ``sketch`` (the update's sketch, made outside it). See docs/trust.md."""

from __future__ import annotations

import logging
import threading
import time

from greenfl.core.messages import ClientReport
from greenfl.deploy import greenfl_pb2 as pb
from greenfl.deploy.server.checks import ClaimRules, as_rejected
from greenfl.deploy.server.claims import (
    LossPeers,
    Observation,
    PeerStats,
    charged_estimate,
    judge_compute,
)
from greenfl.deploy.server.replay import ReplayGuard, Sketch, sketch_of
from greenfl.deploy.server.sessions import Pending, Session
from greenfl.deploy.server.trust import TrustSettings

log = logging.getLogger("greenfl.serve")


def ack_of(report: ClientReport | None) -> pb.Ack:
    """The acknowledgement of an update: the judgement the ledger will keep (a disputed
    update is aggregated, with its dispute as the reason)."""
    if report is None:
        return pb.Ack(accepted=False, reason="no judgement")
    return pb.Ack(accepted=report.status == "completed", reason=report.reason or "")


class Witness:
    """The server's witness of its clients' tasks (thread-safe)."""

    def __init__(self, trust: TrustSettings, largest_partition: int = 0) -> None:
        """``largest_partition``: the configured dataset's largest partition, at which
        aggregation caps a declared size (plausible.bound_round); selection sees it so
        capped too (0: not capped)."""
        self.trust = trust
        self.largest_partition = largest_partition
        self.peers = PeerStats(trust.peer_outlier_mads)
        self.losses = LossPeers(trust.peer_outlier_mads)
        self.replay = ReplayGuard(trust.replay_distance)
        self._observed: dict[int, Observation] = {}
        self._disputed: set[int] = set()  # clients whose dispute was logged
        self._declares: dict[int, bool] = {}  # client -> it weighs by its declared size
        self._lock = threading.Lock()

    def rules_for(self, sess: Session) -> ClaimRules:
        """How the claims of ``sess``'s client are judged (its enrolled device's class)."""
        declared = sess.num_samples > 0
        with self._lock:
            self._declares[sess.client_id] = declared
        return ClaimRules(self.trust.claim_tolerance, sess.device, declared, self.peers, sess.flag)

    def sketch(self, report: ClientReport) -> Sketch | None:
        """The replay sketch of an accepted update (None for any other)."""
        if report.status != "completed" or report.delta is None:
            return None
        return sketch_of(report.delta, self.replay.seed)

    def unreplayed(
        self, pending: Pending, report: ClientReport, sk: Sketch | None
    ) -> tuple[ClientReport, Sketch | None]:
        """``report`` as the witness judges it after the update's own checks (checks.py):
        rejected if its update is free riding or a replay (then without its sketch); else,
        if accepted, disputed where its reported compute time or loss disagrees with what
        the server saw and the other clients report (``judged``)."""
        if sk is None:
            return self.judged(pending, report), None
        why = None
        m = pending.model
        if m is not None and m.expected_flops > 0:  # asked to train: zero is no answer
            why = self.replay.free_riding(report.client_id, sk)
        if why is None:
            why = self.replay.reason(report.client_id, pending.round_idx, sk)
        if why is None:
            return self.judged(pending, report), sk
        return as_rejected(report, why, pending.model, pending.flag), None

    def judged(self, pending: Pending, report: ClientReport) -> ClientReport:
        """An accepted ``report`` disputed where checks.judged_claims has not judged it: a
        reported compute time under the server's estimate by more than the tolerance
        (charged the estimate), or a loss far above the other clients' (given selection
        as their median, and counted towards quarantine)."""
        m = pending.model
        if report.status != "completed" or m is None:
            return report
        wall_s = None
        if pending.delivered_at is not None:
            wall_s = time.monotonic() - pending.delivered_at
        cid = int(report.client_id)
        if not report.disputed and report.measured_compute_s is not None:
            why = judge_compute(m, report.measured_compute_s, wall_s, self.trust.claim_tolerance)
            if why is not None:
                report = charged_estimate(report, m, wall_s, why)
        loss = float(report.loss)
        why, median = self.losses.judge(cid, loss)
        if why is None:
            self.losses.add(cid, loss)
            return report
        report = charged_estimate(report, m, wall_s, why)
        # Selection reads the reported loss: the others' median instead of the lie. With no
        # peers yet (a negative loss in the run's first tasks) the loss stays: selection
        # clips it to 0, and nan would make it look unexplored, which selection favours.
        return report if median is None else report._replace(loss=median)

    def settled(
        self,
        pending: Pending,
        report: ClientReport,
        size: int,
        joined_at: float,
        sk: Sketch | None,
    ) -> int | None:
        """Note what the server saw of a settled task (and an accepted update's sketch);
        the samples the population should now hold for its client where its declared
        size was disputed, else None."""
        cid = int(report.client_id)
        wall_s = None
        if pending.delivered_at is not None and pending.answered_at is not None:
            wall_s = pending.answered_at - pending.delivered_at
        obs = Observation(cid, pending.round_idx, wall_s, pending.bytes_down, size, joined_at)
        with self._lock:
            self._observed[cid] = obs
            first = report.disputed and cid not in self._disputed
            if first:
                self._disputed.add(cid)
        if sk is not None and report.status == "completed":
            self.replay.accept(cid, pending.round_idx, sk)
        if first:  # once per client; the ledger has every one
            log.warning(
                "client %d in round %d: %s (further disputes of this client: ledger only)",
                cid,
                pending.round_idx,
                report.reason,
            )
        with self._lock:
            declares = self._declares.get(cid, False)
        if not declares:
            return None
        # Selection sees what it could have done (a disputed size), and at most what
        # aggregation weighs it as (plausible.bound_round caps a declared size at the
        # largest partition, or the round's median if more): a percentile clip over the
        # peers' claims no longer holds once two of eight clients claim the same (issue
        # 29's audit: picked 7 of 8 rounds).
        n = int(report.num_samples) if report.disputed else int(pending.num_samples)
        if self.largest_partition > 0:
            n = min(n, self.largest_partition)
        return n if n < pending.num_samples else None

    def observations(self) -> dict[int, Observation]:
        """(any thread) The latest observation of each client's task."""
        with self._lock:
            return dict(self._observed)
