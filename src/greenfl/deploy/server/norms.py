"""The norm bound judged as each update arrives, so that its acknowledgement says it
(issue 29): an update whose L2 norm exceeds ``deploy.norm_bound_factor`` times the median of
the reference (the last round's accepted norms and this round's so far, its own included;
``MIN_COHORT_FOR_MEDIAN`` or more) is rejected."""

from __future__ import annotations

import statistics
from collections.abc import Mapping

from greenfl.deploy.server.plausible import MIN_COHORT_FOR_MEDIAN
from greenfl.deploy.server.sessions import Pending


class NormBound:
    """The reference norms of a deployment's rounds (guarded by the servicer's lock).
    ``factor`` None: no norm bound (off, or secure aggregation: no update to see)."""

    def __init__(self, factor: float | None) -> None:
        self.factor = factor
        self.last: list[float] = []  # the last round's accepted updates' norms

    def reference(self, tasks: Mapping[int, Pending]) -> list[float]:
        """The norms an arriving update is judged against: the last round's accepted, and
        this round's arrived and not refused (held ones included)."""
        return self.last + [
            p.norm
            for p in tasks.values()
            if p.norm is not None and (p.report is None or p.report.status == "completed")
        ]

    @staticmethod
    def to_come(pending: Pending, tasks: Mapping[int, Pending]) -> bool:
        """Whether a task of the round other than ``pending`` may still bring a norm."""
        return any(p is not pending and p.report is None and p.norm is None for p in tasks.values())

    def ready(self, ref: list[float]) -> bool:
        return len(ref) >= MIN_COHORT_FOR_MEDIAN

    def verdict(self, norm: float, ref: list[float]) -> str | None:
        """Why an update of L2 norm ``norm`` is refused against ``ref``, or None."""
        if self.factor is None or not self.ready(ref):
            return None
        median = statistics.median(ref)
        if median > 0 and norm > self.factor * median:
            return (
                f"update norm {norm:.4g} exceeds {self.factor:g}x the round's median "
                f"{median:.4g} (its updates so far and the last round's)"
            )
        return None

    @staticmethod
    def release(tasks: Mapping[int, Pending], at: float) -> None:
        """The round closes: updates held for a reference that never came are accepted."""
        for p in tasks.values():
            if p.report is None and p.held is not None:
                p.report, p.answered_at = p.held, at

    def close(self, tasks: Mapping[int, Pending]) -> None:
        """The round closed: its accepted norms are the next round's reference."""
        self.last = [
            p.norm
            for p in tasks.values()
            if p.norm is not None and p.report is not None and p.report.status == "completed"
        ]
