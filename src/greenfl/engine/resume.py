"""Continuing a run from its ledger after a crash: the rounds already written stay, and the
loop's state (global model, round, strategy state, RNGs, simulated clock) is restored from
the ``server_state`` row written in the same transaction as the last completed round."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

from greenfl.core.errors import ConfigError
from greenfl.engine.snapshot import check_snapshot
from greenfl.ledger import amend, integrity
from greenfl.ledger.writer import LedgerWriter

STATE_KEY = "loop"
log = logging.getLogger("greenfl.resume")


def ledger_path(out_dir: str | Path) -> Path:
    return Path(out_dir) / "ledger.sqlite"


def saved_state(ledger: LedgerWriter) -> bytes | None:
    """The loop state after the last round saved with one, or None to start over. Rounds
    written after it without their state (a simulation hands rounds to the ledger in
    batches, and one cut short by a crash has no state) are removed: the resumed run
    re-runs them. Reopening the ledger also marks the run as running again.

    First, nothing is resumed that cannot be trusted (a LedgerError, in one line, and the
    ledger left as it was): a ledger whose hash chain or fingerprints no longer match, or a
    fleet file, trace or code changed since the run started (unless accepted with
    ``--accept-changes``: greenfl.ledger.integrity.check_for_resume), a model with NaN or
    infinite weights, or a random-generator state numpy refuses."""
    conn = ledger.conn
    integrity.check(conn, inputs=True, code=True)
    row = conn.execute(
        "SELECT round, value FROM server_state WHERE key = ?", (STATE_KEY,)
    ).fetchone()
    last = conn.execute("SELECT MAX(round) FROM rounds").fetchone()[0]
    if row is None and last is not None and not _checkpointed(conn):
        raise ConfigError(
            f"--resume: {ledger.path} has {last} rounds but no saved state "
            "(engine.checkpoint = false)"
        )
    if row is not None:
        check_snapshot(bytes(row[1]))
    saved = row[0] if row is not None else 0
    with ledger.transaction():
        if last is not None and last > saved:
            log.warning(
                "resume: rounds %d-%d of %s were written without their state; re-running them",
                saved + 1,
                last,
                ledger.path,
            )
            conn.execute("DELETE FROM client_rounds WHERE round > ?", (saved,))
            conn.execute("DELETE FROM rounds WHERE round > ?", (saved,))
            amend.drop_rounds_after(conn, saved)
        conn.execute("UPDATE runs SET status = 'running', stop_reason = NULL WHERE run_id = 1")
    return bytes(row[1]) if row is not None else None


def _checkpointed(conn: sqlite3.Connection) -> bool:
    row = conn.execute("SELECT config_json FROM runs WHERE run_id = 1").fetchone()
    return row is None or bool(json.loads(row[0]).get("engine", {}).get("checkpoint", True))
