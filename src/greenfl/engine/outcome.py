"""summary.json of a run: the ledger's totals (or, without accounting, the round records'),
with the privacy spent, the attack simulated and the final model's accuracy per region."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from greenfl.engine.fairness import REGION_ACCURACY_KEY
from greenfl.engine.records import RoundRecord
from greenfl.ledger.summary import (
    last_round_columns,
    safety_summary,
    summarize,
    unaccounted_summary,
)


@dataclass(frozen=True)
class SummaryFacts:
    """What summary.json says of the run beyond its ledger: its target, and the privacy
    and attack it ran with."""

    target_accuracy: float | None = None
    privacy_delta: float | None = None  # None: no differential privacy
    attack: str = "none"
    attack_fraction: float = 0.0
    submodel: str = "none"  # [submodel] name: none, heterofl or fjord


def run_summary(
    facts: SummaryFacts,
    accounting: bool,
    history: Sequence[RoundRecord],
    conn: sqlite3.Connection,
    wall_s: float,
    clients_distinct: int,
) -> dict[str, Any]:
    """summary.json's keys for the run so far. ``clients_distinct`` (clients with at least
    one aggregated round, from the loop's participation counts) is used only without
    accounting: with it, the ledger's rows are counted, so the figure equals theirs."""
    if not accounting:
        out = unaccounted_summary(history, facts.target_accuracy, wall_s, clients_distinct)
        last = history[-1].probes if history else {}
    else:
        out = summarize(conn, facts.target_accuracy, wall_s)
        last = last_round_columns(conn, ("epsilon", "backdoor_success"))
    safety = safety_summary(last, facts.attack, facts.attack_fraction, facts.privacy_delta)
    return {
        **out,
        **safety,
        "region_accuracy": region_accuracy(conn),
        "submodel": {"name": facts.submodel},
    }


def region_accuracy(conn: sqlite3.Connection) -> dict[str, float] | None:
    """{region: accuracy} of the final model on each region's clients' own test data, as
    the end of the run wrote it into the ledger's meta; None before it is written."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (REGION_ACCURACY_KEY,)).fetchone()
    if row is None:
        return None
    return {name: float(v["accuracy"]) for name, v in json.loads(row[0]).items()}
