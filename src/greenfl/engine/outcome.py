"""summary.json of a run: the ledger's totals (or, without accounting, the round records'),
with the privacy spent and the attack simulated."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from greenfl.config import RunConfig
from greenfl.engine.records import RoundRecord
from greenfl.ledger.summary import (
    last_round_columns,
    safety_summary,
    summarize,
    unaccounted_summary,
)


def run_summary(
    cfg: RunConfig, history: Sequence[RoundRecord], conn: sqlite3.Connection, wall_s: float
) -> dict[str, Any]:
    """summary.json's keys for the run so far."""
    if not cfg.engine.accounting:
        out = unaccounted_summary(history, cfg.stop.target_accuracy, wall_s)
        last = history[-1].probes if history else {}
    else:
        out = summarize(conn, cfg.stop.target_accuracy, wall_s)
        last = last_round_columns(conn, ("epsilon", "backdoor_success"))
    delta = cfg.privacy.delta if cfg.privacy.mode != "none" else None
    return {**out, **safety_summary(last, cfg.attack.name, cfg.attack.fraction, delta)}
