"""Clients that keep failing a deployment's rounds sit some out: one whose tasks are
rejected, disputed as lies about their data or as outliers among their peers, or time out
twice in a row is not sent tasks for ``deploy.quarantine_rounds`` rounds, so a
silent, lying or hostile client stops costing every round a full timeout."""

from __future__ import annotations

from dataclasses import dataclass, field

from greenfl.core.messages import ClientReport
from greenfl.deploy.server.claims import DATA_DISPUTE, PEER_OUTLIER

STRIKES = 2  # one bad round can be the network; two in a row is the client


def counts_against(report: ClientReport) -> bool:
    """A rejected update, a report disputed as a lie about its data or as an outlier among
    its peers, or a task that timed out: the client's doing, not the round's."""
    reason = report.reason or ""
    return (
        report.status == "rejected"
        or (report.disputed and reason.startswith((DATA_DISPUTE, PEER_OUTLIER)))
        or (report.status == "failed" and reason.startswith("timeout"))
    )


@dataclass
class Quarantine:
    rounds: int
    strikes: dict[int, int] = field(default_factory=dict)
    until: dict[int, int] = field(default_factory=dict)  # client -> first round back

    def reason(self, cid: int, round_idx: int) -> str | None:
        """Why ``cid`` gets no task in ``round_idx``, or None."""
        back = self.until.get(cid)
        if back is None or round_idx >= back:
            return None
        return (
            f"quarantined until round {back}: {STRIKES} tasks in a row rejected, timed out, "
            "or disputed as an outlier or for its data"
        )

    def record(self, round_idx: int, reports: list[ClientReport]) -> None:
        for r in reports:
            cid = int(r.client_id)
            if (r.reason or "").startswith("quarantined"):
                continue
            if not counts_against(r):
                self.strikes.pop(cid, None)
                continue
            self.strikes[cid] = self.strikes.get(cid, 0) + 1
            if self.strikes[cid] >= STRIKES and self.rounds > 0:
                self.until[cid] = round_idx + 1 + self.rounds
                self.strikes.pop(cid)
