"""Closing a round: over-selection, a deadline, drop-outs and stragglers.

The server asks k x (1 + over_selection) clients, keeps the first k to finish (by the
deadline, if one is set) and closes the round. Clients still working then are stragglers:
they are told to stop, and the work they did until then is counted. Clients that drop out
stop part-way and their work until then is counted too. Wasted work is real."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COMPLETED, STRAGGLER, DROPPED, FAILED = "completed", "straggler", "dropped", "failed"
PARTIAL = "partial"  # completed the (reduced) work it was given: partial work, aggregated


@dataclass(frozen=True)
class RoundClose:
    close_s: float  # since round start, when the server stops waiting
    status: np.ndarray  # per client, object array of status strings
    active_s: np.ndarray  # seconds each client worked (full, or cut at drop / close)


def close_round(
    total_s: np.ndarray,
    drop_at_s: np.ndarray,
    failed: np.ndarray,
    k: int,
    deadline_s: float | None,
) -> RoundClose:
    """total_s: each client's full time; drop_at_s: when it drops out (inf if it does not);
    failed: clients whose report was unusable (they finish but are not aggregated)."""
    n = len(total_s)
    finishes = np.isfinite(total_s) & (drop_at_s >= total_s)
    on_time = finishes & ~failed
    if deadline_s is not None:
        on_time &= total_s <= deadline_s
    order = np.flatnonzero(on_time)[np.argsort(total_s[on_time], kind="stable")]
    accepted = order[:k]
    end_s = np.where(finishes, total_s, drop_at_s)
    last_end_s = float(end_s.max()) if n else 0.0
    if len(accepted) == k and k > 0:
        close_s = float(total_s[accepted[-1]])
    elif deadline_s is not None:
        # Waits for the deadline, or until every client has finished or dropped out
        # (a drop-out is seen as a lost connection).
        close_s = min(float(deadline_s), last_end_s)
    else:
        close_s = last_end_s
    status = np.full(n, STRAGGLER, dtype=object)
    status[accepted] = COMPLETED
    status[failed & finishes] = FAILED
    status[~finishes] = DROPPED
    # Accepted clients did all their work; everyone else stopped at their own end (finish or
    # drop-out) or when the round closed, whichever came first.
    active_s = np.where(status == COMPLETED, total_s, np.minimum(end_s, close_s))
    return RoundClose(close_s=close_s, status=status, active_s=active_s)
