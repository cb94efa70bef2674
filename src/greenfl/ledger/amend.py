"""Amending the ledger's hash chain (greenfl.ledger.chain): accepting changes on
``--accept-changes`` (a link that says what was accepted and when, and the chain made to
agree with the ledger as it is), re-linking after greenfl itself removes rounds (a
resumed run re-runs those written without their state), and recording the columns later
rounds are hashed over when a ledger written by another greenfl is opened to go on."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from greenfl.ledger.chain import (
    COLUMNS,
    FINGERPRINT_KEY,
    Inputs,
    Problem,
    effective,
    link_digest_of,
    links_of,
    round_parts,
)
from greenfl.ledger.columns import CURRENT, Columns, table_columns
from greenfl.ledger.ending import ENDS_KEY, append_end, status_problem
from greenfl.ledger.fingerprint import config_digests, fleet_digests
from greenfl.ledger.schema import SCHEMA_VERSION
from greenfl.ledger.store import (
    Transaction,
    chain_head,
    link_digest,
    model_sha256,
    state_sha256,
)


def accept(conn: sqlite3.Connection, found: Sequence[Problem], inputs: Inputs | None) -> None:
    """(in a transaction) Make the chain agree with the ledger and the inputs as they are
    now, and append a link that records what was accepted and when (then, where the run's
    status is not the one the chain ends with, an end link recording it as it is)."""
    if not found:
        return
    links = links_of(conn)
    fp = effective(links)
    if fp is None:  # no chain, or no start: begin one from what the ledger holds now
        fp = _fingerprint_of_record(conn, inputs)
        seq = min((link.seq for link in links), default=1) - 1
        conn.execute(
            "INSERT INTO chain (seq, kind, body, digest) VALUES (?, 'start', ?, '')",
            (seq, json.dumps(fp, sort_keys=True, separators=(",", ":"))),
        )
    _rechain_rounds(conn)
    change: dict[str, Any] = {
        "when_utc": datetime.now(timezone.utc).isoformat(),
        "what": [p.line for p in found],
    }
    record = _record_now(conn)
    if record is not None and record != fp["record"]:
        change["record"] = record
    if inputs is not None:
        now = {
            "fleet": inputs.fleet,
            "traces": inputs.traces,
            "code": inputs.code if inputs.code is not None else fp["inputs"]["code"],
        }
        if now != fp["inputs"]:
            change["inputs"] = now
    relink(conn)
    body = json.dumps(change, sort_keys=True, separators=(",", ":"))
    conn.execute(
        "INSERT INTO chain (kind, body, digest) VALUES ('change', ?, ?)",
        (body, link_digest(chain_head(conn), "change", body)),
    )
    _accept_status(conn)


def _accept_status(conn: sqlite3.Connection) -> None:
    """An end link for the run's status as the ledger has it, where the chain says
    otherwise (an edited status, a ledger from before the chain, an added round after the
    end): after the change link that names it, so the chain ends as the ledger does."""
    row = conn.execute("SELECT status, stop_reason FROM runs WHERE run_id = 1").fetchone()
    links = links_of(conn)
    kinds_bodies = [(link.kind, link.body) for link in links]
    if row is not None and status_problem(row[0], row[1], kinds_bodies, effective(links)):
        append_end(conn, row[0], row[1])


def _record_now(conn: sqlite3.Connection) -> dict[str, Any] | None:
    row = conn.execute("SELECT config_json, fleet_json FROM runs WHERE run_id = 1").fetchone()
    if row is None:
        return None
    return {
        "config": config_digests(json.loads(row[0])),
        "fleet": fleet_digests(json.loads(row[1])),
    }


def _fingerprint_of_record(conn: sqlite3.Connection, inputs: Inputs | None) -> dict[str, Any]:
    record = _record_now(conn) or {"config": {}, "fleet": {}}
    # the columns the tables have now: a ledger from before the chain may not be migrated
    # yet (the writer migrates it, and records the new columns, when the run goes on)
    cols = table_columns(conn)
    return {
        "format": 1,
        "fleet_path": inputs.fleet_path if inputs is not None else "",
        "record": record,
        "inputs": {
            "fleet": inputs.fleet if inputs is not None else dict(record["fleet"]),
            "traces": inputs.traces if inputs is not None else {},
            "code": inputs.code if inputs is not None else {},
        },
        "round_columns": list(cols.rounds),
        "client_columns": list(cols.clients),
        ENDS_KEY: True,  # this greenfl records the endings from here on
    }


def _rechain_rounds(conn: sqlite3.Connection) -> None:
    """Round links recomputed from the rows as they are (each over the columns in effect
    at its link): edited rounds get their digests, deleted rounds lose their link, added
    rounds get one; the state's round gets the state's digests."""
    links = links_of(conn)
    by_round = {link.round: link for link in links if link.kind == "round"}
    seen = set()
    for rnd, rounds_sha, clients_sha in list(round_parts(conn, links)):
        seen.add(rnd)
        if rnd in by_round:
            conn.execute(
                "UPDATE chain SET rounds_sha256 = ?, clients_sha256 = ? WHERE seq = ?",
                (rounds_sha, clients_sha, by_round[rnd].seq),
            )
        else:
            conn.execute(
                "INSERT INTO chain (kind, round, rounds_sha256, clients_sha256, digest) "
                "VALUES ('round', ?, ?, ?, '')",
                (rnd, rounds_sha, clients_sha),
            )
    for rnd in set(by_round) - seen:
        conn.execute("DELETE FROM chain WHERE seq = ?", (by_round[rnd].seq,))
    rows = conn.execute("SELECT key, round, value FROM server_state").fetchall()
    if rows:
        state = {k: bytes(v) for k, _, v in rows}
        last = max(r for _, r, _ in rows)
        conn.execute(
            "UPDATE chain SET model_sha256 = NULL, state_sha256 = NULL "
            "WHERE kind = 'round' AND round > ?",
            (last,),
        )
        conn.execute(
            "UPDATE chain SET model_sha256 = ?, state_sha256 = ? "
            "WHERE kind = 'round' AND round = ?",
            (model_sha256(state), state_sha256(state), last),
        )


def relink(conn: sqlite3.Connection) -> None:
    """(in a transaction) Every link's digest recomputed in order: after greenfl itself
    removed or accepted links, never to hide an edit (``problems`` runs first)."""
    prev: str | None = None
    for link in links_of(conn):
        digest = link_digest_of(prev, link)
        if digest != link.digest:
            conn.execute("UPDATE chain SET digest = ? WHERE seq = ?", (digest, link.seq))
        prev = digest
    if conn.execute("SELECT 1 FROM meta WHERE key = ?", (FINGERPRINT_KEY,)).fetchone() is None:
        first = conn.execute("SELECT body FROM chain WHERE kind = 'start'").fetchone()
        if first is not None:
            conn.execute("INSERT INTO meta VALUES (?, ?)", (FINGERPRINT_KEY, first[0]))


def drop_rounds_after(conn: sqlite3.Connection, saved: int) -> None:
    """(in a transaction) The links of rounds after ``saved`` removed with their rows (a
    resumed run re-runs rounds written without their state), and the chain re-linked."""
    conn.execute("DELETE FROM chain WHERE kind = 'round' AND round > ?", (saved,))
    relink(conn)


def record_columns(conn: sqlite3.Connection, now: Columns = CURRENT) -> bool:
    """(its own transaction) Before this greenfl writes rounds into a ledger whose chain
    hashes other columns (a run started by an older greenfl, its ledger migrated since by
    greenfl.ledger.schema.migrate): a link of kind ``columns`` listing the columns ``now``
    that the rounds after it are hashed over, with the schema version and when. The rounds
    before it stay hashed over the columns they were written with. Whether a link was
    added: none where the columns agree, or where the ledger has no chain start (its
    check refuses it; ``--accept-changes`` starts one over the columns it has)."""
    with Transaction(conn):
        fp = effective(links_of(conn))
        if fp is None:
            return False
        was = Columns.of(fp)
        if was == now:
            return False
        body = json.dumps(
            {
                "round_columns": list(now.rounds),
                "client_columns": list(now.clients),
                "schema_version": SCHEMA_VERSION,
                "when_utc": datetime.now(timezone.utc).isoformat(),
            },
            sort_keys=True,
            separators=(",", ":"),
        )
        conn.execute(
            "INSERT INTO chain (kind, body, digest) VALUES (?, ?, ?)",
            (COLUMNS, body, link_digest(chain_head(conn), COLUMNS, body)),
        )
    return True
