"""A run folder's integrity, as ``greenfl verify``, ``greenfl report`` and ``--resume`` check
it: the ledger's hash chain and recorded fingerprints (greenfl.ledger.chain), the run's
status against the chain's end links (greenfl.ledger.ending), and, where a run would read
them again, the fleet file, its traces and the code as they are now.

What is checked where:
  verify   the chain, the record and status, the fleet file and traces (not the code: a
           finished run is verified by later greenfl versions too);
  resume   all of that and the code, since the resumed rounds are computed by it;
  report   the chain, the record and status only: the report reads nothing else.
A mismatch is a LedgerError naming the first one, in one line; ``accept_changes`` records
them all in the ledger instead (``--accept-changes``)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from greenfl._version import __version__
from greenfl.core.errors import FleetError, LedgerError
from greenfl.ledger import amend, chain, ending, store
from greenfl.ledger.fingerprint import code_version, fleet_digests, trace_digests
from greenfl.ledger.schema import DDL

LEDGER = "ledger.sqlite"


def current_inputs(config: Mapping[str, Any], code: bool) -> chain.Inputs:
    """What a run of ``config`` (as the ledger holds it) would read now."""
    from greenfl.fleet.catalog import load_fleet

    catalog = str(config.get("fleet", {}).get("catalog", "builtin"))
    try:
        fleet = load_fleet(catalog).to_dict()
    except FleetError as exc:
        # A fleet file that no longer loads is a change too: named, not a traceback.
        return chain.Inputs(catalog, {}, {}, error=str(exc).splitlines()[0])
    paths = {str(r["name"]): str(r["trace"]) for r in fleet["region"] if r.get("trace")}
    return chain.Inputs(
        catalog,
        fleet_digests(fleet),
        trace_digests(fleet),
        paths,
        code_version(__version__) if code else None,
    )


def _stored_config(conn: sqlite3.Connection) -> dict[str, Any] | None:
    row = conn.execute("SELECT config_json FROM runs WHERE run_id = 1").fetchone()
    if row is None:
        return None
    try:
        config = json.loads(row[0])
    except ValueError:
        return None
    return config if isinstance(config, dict) else None


def _inputs(conn: sqlite3.Connection, inputs: bool, code: bool) -> chain.Inputs | None:
    config = _stored_config(conn)
    return current_inputs(config, code) if inputs and config is not None else None


def check(conn: sqlite3.Connection, inputs: bool = True, code: bool = True) -> None:
    """Raise LedgerError naming the first mismatch, if any."""
    found = chain.problems(conn, _inputs(conn, inputs, code), first=True)
    if found:
        raise LedgerError(found[0].line)


def accept_changes(conn: sqlite3.Connection, inputs: bool = True, code: bool = True) -> list[str]:
    """Record every mismatch in the ledger as accepted (a chain link saying what and when)
    and make the chain agree with the ledger and inputs as they are; the lines accepted."""
    now = _inputs(conn, inputs, code)
    with store.Transaction(conn):
        found = chain.problems(conn, now)
        amend.accept(conn, found, now)
    return [p.line for p in found]


def open_ledger(out_dir: Path, start_chain: bool = False) -> sqlite3.Connection:
    """The run folder's ledger, opened for checking (a LedgerError if there is none).
    ``start_chain``: a ledger written before greenfl kept a chain gets its (empty) chain
    table, for ``--accept-changes`` to start the chain in."""
    path = Path(out_dir) / LEDGER
    if not path.is_file():
        raise LedgerError(f"no ledger at {path}")
    try:
        conn = store.connect(str(path))
        if start_chain:  # CREATE TABLE IF NOT EXISTS: only the tables it lacks
            conn.executescript(DDL)
        conn.execute("SELECT 1 FROM runs LIMIT 1").fetchall()
        conn.execute("SELECT 1 FROM chain LIMIT 1").fetchall()
    except sqlite3.Error as exc:
        raise LedgerError(f"{path} is not a greenfl ledger with a hash chain: {exc}") from None
    return conn


def has_chain(out_dir: Path) -> bool:
    """Whether the run folder's ledger has a hash chain table (ledgers written before
    greenfl kept one do not; a table emptied since is a mismatch, not this)."""
    path = Path(out_dir) / LEDGER
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            sql = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'chain'"
            return conn.execute(sql).fetchone()[0] > 0
        finally:
            conn.close()
    except sqlite3.Error:
        return False


def verify_run(out_dir: Path) -> str:
    """The run's digest (its chain's head) when everything checks; a LedgerError naming the
    first mismatch otherwise."""
    conn = open_ledger(out_dir)
    try:
        check(conn, inputs=True, code=False)
        digest = chain.head(conn)
    finally:
        conn.close()
    if digest is None:
        raise LedgerError(f"{Path(out_dir) / LEDGER} has no hash chain")
    return digest


def verify_note(out_dir: Path) -> str | None:
    """For a run that verifies but has not ended (its ledger still ``running``), one line
    saying so: in progress, stopped without recording its end (``kill -9``), or resumed
    with no round committed since. None for an ended run. Not an edit: ``greenfl verify``
    still exits 0 with the digest."""
    conn = open_ledger(out_dir)
    try:
        row = conn.execute("SELECT status FROM runs WHERE run_id = 1").fetchone()
        if row is None:
            return None
        links = [(link.kind, link.body) for link in chain.links_of(conn)]
        (last,) = conn.execute("SELECT MAX(round) FROM rounds").fetchone()
    finally:
        conn.close()
    return ending.not_ended_note(row[0], links, last)


def check_for_report(out_dir: Path, accept: bool = False) -> list[str]:
    """Before a report: the chain and the record; with ``accept``, mismatches recorded
    instead of refused (the lines accepted)."""
    return _check_folder(out_dir, accept, inputs=False, code=False)


def check_for_resume(out_dir: Path, accept: bool = False) -> list[str]:
    """Before a resume (``greenfl run --resume``, ``greenfl serve --resume``): the chain,
    the record, the fleet file, traces and code; with ``accept``, mismatches recorded in the
    ledger instead of refused (the lines accepted). Without ``accept`` the resumed run's
    own check (greenfl.engine.resume.saved_state) refuses them anyway."""
    return _check_folder(out_dir, accept, inputs=True, code=True)


def _check_folder(out_dir: Path, accept: bool, inputs: bool, code: bool) -> list[str]:
    conn = open_ledger(out_dir, start_chain=accept)
    try:
        if accept:
            return accept_changes(conn, inputs, code)
        check(conn, inputs, code)
        return []
    finally:
        conn.close()
