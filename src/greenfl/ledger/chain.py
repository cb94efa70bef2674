"""The ledger's hash chain: each committed round is a link whose SHA-256 covers the link
before it, the round's ``rounds`` row, its ``client_rounds`` rows (by client id), and the
model and server state saved with it. The first link covers the run's fingerprints
(greenfl.ledger.fingerprint); a change accepted with ``--accept-changes`` is a link too.

The writer process makes each round's link as it commits the round (greenfl.ledger.store:
it hashes the values it already holds). This module reads a ledger back and names the first
thing that no longer matches: an edited, added or deleted row, an edited model or server
state, an edited recorded config or fleet, or (given what the run would read now) a
changed fleet file, trace or code version. ``accept`` records such changes as a link of
their own and re-links the chain, so the ledger says what was accepted and when.

The columns a round link hashes are the ones in effect at the link: those the start link
lists, until a link of kind ``columns`` lists others (greenfl.ledger.columns). How the run
ended is a link too (kind ``end``), and the run's status is held against it
(greenfl.ledger.ending).

What it cannot do: someone who rewrites the rows *and* recomputes every digest after them
makes a consistent chain. The head digest (``greenfl verify`` prints it, the server logs it)
kept somewhere else is what catches that."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from greenfl.ledger.columns import CURRENT, Columns, round_digests
from greenfl.ledger.ending import ENDS_KEY, status_problem
from greenfl.ledger.fingerprint import (
    config_digests,
    describe_code,
    fleet_digests,
)
from greenfl.ledger.schema import CLIENT_ROUND_COLUMNS, ROUND_COLUMNS
from greenfl.ledger.store import (
    chain_head,
    link_digest,
    model_sha256,
    state_sha256,
)

FINGERPRINT_KEY = "fingerprint"  # meta: a copy of the start link's body, for readers
COLUMNS = "columns"  # the kind of link that changes the columns later round links hash
_LINKS = (
    "SELECT seq, kind, round, rounds_sha256, clients_sha256, model_sha256, state_sha256, "
    "body, digest FROM chain ORDER BY seq"
)


@dataclass(frozen=True)
class Inputs:
    """What a resumed run would read now, as digests (greenfl.ledger.fingerprint): the
    fleet file's items, its regions' traces, and the code (None: not compared)."""

    fleet_path: str
    fleet: dict[str, str]
    traces: dict[str, str]
    trace_paths: dict[str, str] = field(default_factory=dict)
    code: dict[str, Any] | None = None
    error: str | None = None  # why the fleet file could not be loaded now


@dataclass(frozen=True)
class Problem:
    """One mismatch: ``line`` says what changed, in one line."""

    line: str
    kind: str  # rows | chain | state | record | status | inputs | nochain


@dataclass(frozen=True)
class _Link:
    seq: int
    kind: str
    round: int | None
    rounds_sha: str | None
    clients_sha: str | None
    model_sha: str | None
    state_sha: str | None
    body: str | None
    digest: str


def start_chain(conn: sqlite3.Connection, fingerprint: Mapping[str, Any]) -> None:
    """(in a transaction) The chain's first link, over the run's fingerprints and the
    columns its round links hash; it says the chain records the run's endings."""
    body = json.dumps(
        {
            **fingerprint,
            "round_columns": list(ROUND_COLUMNS),
            "client_columns": list(CLIENT_ROUND_COLUMNS),
            ENDS_KEY: True,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    conn.execute("DELETE FROM chain")
    conn.execute(
        "INSERT INTO chain (kind, body, digest) VALUES ('start', ?, ?)",
        (body, link_digest(None, "start", body)),
    )
    conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (FINGERPRINT_KEY, body))


def head(conn: sqlite3.Connection) -> str | None:
    """The digest of the last link: the run's digest, as far as it has gone."""
    return chain_head(conn)


def links_of(conn: sqlite3.Connection) -> list[_Link]:
    return [_Link(*row) for row in conn.execute(_LINKS)]


def link_digest_of(prev: str | None, link: _Link) -> str:
    if link.kind == "round":
        parts = (link.rounds_sha, link.clients_sha, link.model_sha, link.state_sha)
        return link_digest(prev, "round", link.round, *parts)
    return link_digest(prev, link.kind, link.body)


def effective(links: Sequence[_Link]) -> dict[str, Any] | None:
    """The start fingerprint with every accepted change applied, and the columns of the
    last columns link; None without a start."""
    if not links or links[0].kind != "start" or links[0].body is None:
        return None
    fp: dict[str, Any] = json.loads(links[0].body)
    for link in links:
        if link.kind == "change" and link.body is not None:
            change = json.loads(link.body)
            for part in ("record", "inputs"):
                if part in change:
                    fp[part] = change[part]
        elif link.kind == COLUMNS:
            cols = _body_columns(link)
            if cols is not None:
                fp["round_columns"], fp["client_columns"] = list(cols.rounds), list(cols.clients)
    return fp


def _body_columns(link: _Link) -> Columns | None:
    try:
        body = json.loads(link.body or "")
    except ValueError:
        return None
    return Columns.of(body) if isinstance(body, dict) else None


def columns_at(links: Sequence[_Link]) -> tuple[dict[int, Columns], Columns]:
    """The columns each round's link hashes (those in effect at the link), and those in
    effect after the last link (a round without a link gets them when one is made)."""
    now: Columns | None = None
    by_round: dict[int, Columns] = {}
    for link in links:
        if link.kind in ("start", COLUMNS):
            now = _body_columns(link) or now
        elif link.kind == "round" and link.round is not None:
            # a round linked before any start (its start was deleted: that is named first)
            by_round[link.round] = now or CURRENT
    return by_round, now or CURRENT


def round_parts(conn: sqlite3.Connection, links: Sequence[_Link]) -> Iterator[tuple[int, str, str]]:
    """(round, rounds digest, client rows digest) for each round row, recomputed over
    the columns in effect at the round's link."""
    return round_digests(conn, *columns_at(links))


def problems(
    conn: sqlite3.Connection, inputs: Inputs | None = None, first: bool = False
) -> list[Problem]:
    """Every mismatch in the ledger (and, given ``inputs``, against what a run would read
    now), in the order a reader would want them named; only the first with ``first``."""
    out: list[Problem] = []
    for p in _problems(conn, inputs):
        out.append(p)
        if first:
            break
    return out


def _problems(conn: sqlite3.Connection, inputs: Inputs | None) -> Iterator[Problem]:
    links = links_of(conn)
    has_run = conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] > 0
    if not links:
        if has_run:
            yield Problem(
                "the ledger has no hash chain (written by a greenfl that kept none, or its "
                "chain was deleted)",
                "nochain",
            )
        return
    fp = effective(links)
    if fp is None:
        yield Problem(
            "the ledger's hash chain lost its first link (the run's fingerprints)", "chain"
        )
    by_round: dict[int, _Link] = {}
    for link in links:
        if link.kind == "round" and link.round is not None:
            if link.round in by_round:
                yield Problem(f"ledger round {link.round} has two chain links", "chain")
            by_round[link.round] = link
    broken = _first_broken(links)
    if broken is not None and broken.kind in ("start", COLUMNS):
        # the columns the rows are hashed over come from these links: an edit of one is
        # named as such, not as edits of the rounds after it
        yield _chain_problem(broken)
    # the rows, against the digests their links hold
    seen: set[int] = set()
    for rnd, rounds_sha, clients_sha in round_parts(conn, links):
        seen.add(rnd)
        link = by_round.get(rnd)
        if link is None:
            yield Problem(
                f"ledger round {rnd} was added after the rounds were written (it has no chain "
                "link)",
                "rows",
            )
        elif link.rounds_sha != rounds_sha:
            yield Problem(f"ledger round {rnd} was edited after it was written (rounds)", "rows")
        elif link.clients_sha != clients_sha:
            yield Problem(
                f"ledger round {rnd} was edited after it was written (client_rounds)", "rows"
            )
    for rnd in sorted(set(by_round) - seen):
        yield Problem(f"ledger round {rnd} was deleted after it was written", "rows")
    # the links, against each other
    if broken is not None and broken.kind not in ("start", COLUMNS):
        yield _chain_problem(broken)
    yield from _state_problems(conn, by_round)
    if fp is not None:
        yield from _record_problems(conn, fp)
        yield from _status_problems(conn, links, fp)
        if inputs is not None:
            yield from input_problems(fp, inputs)


def _first_broken(links: Sequence[_Link]) -> _Link | None:
    """The first link whose digest is not the one its contents and the link before it
    make, None where every link agrees."""
    prev: str | None = None
    for link in links:
        if link_digest_of(prev, link) != link.digest:
            return link
        prev = link.digest
    return None


def _chain_problem(link: _Link) -> Problem:
    what = f"round {link.round}" if link.kind == "round" else f"its {link.kind} link"
    return Problem(f"the ledger's hash chain was edited at {what} (chain)", "chain")


def _state_problems(conn: sqlite3.Connection, by_round: Mapping[int, _Link]) -> Iterator[Problem]:
    rows = conn.execute("SELECT key, round, value FROM server_state").fetchall()
    if not rows:
        return
    rounds = {r for _, r, _ in rows}
    saved = [rnd for rnd, link in by_round.items() if link.state_sha is not None]
    if len(rounds) != 1 or (saved and max(saved) != min(rounds)):
        yield Problem("the ledger's server state is not the one saved with its last round", "state")
        return
    (rnd,) = rounds
    link = by_round.get(rnd)
    state = {key: bytes(value) for key, _, value in rows}
    if link is None or link.state_sha is None:
        yield Problem(f"the server state of round {rnd} was not saved with that round", "state")
    elif state_sha256(state) != link.state_sha:
        if model_sha256(state) != link.model_sha:
            yield Problem(
                f"the model saved with round {rnd} was edited after it was written", "state"
            )
        else:
            yield Problem(
                f"the server state saved with round {rnd} was edited after it was written "
                "(random generators, strategy or schedule state)",
                "state",
            )


def _record_problems(conn: sqlite3.Connection, fp: Mapping[str, Any]) -> Iterator[Problem]:
    row = conn.execute("SELECT config_json, fleet_json FROM runs WHERE run_id = 1").fetchone()
    if row is None:
        yield Problem("the ledger's run row was deleted", "record")
        return
    try:
        config, fleet = json.loads(row[0]), json.loads(row[1])
    except ValueError:
        yield Problem("the config or fleet recorded in the ledger is not JSON any more", "record")
        return
    what = changed(fp["record"]["config"], config_digests(config))
    if what:
        yield Problem(
            f"the config recorded in the ledger was edited after the run started (section {what})",
            "record",
        )
    what = changed(fp["record"]["fleet"], fleet_digests(fleet))
    if what:
        yield Problem(
            f"the fleet recorded in the ledger was edited after the run started ({what})", "record"
        )


def _status_problems(
    conn: sqlite3.Connection, links: Sequence[_Link], fp: Mapping[str, Any]
) -> Iterator[Problem]:
    """The run's status against the chain's end links (greenfl.ledger.ending); ``fp``: the
    start link's body (as ``effective`` gives it)."""
    row = conn.execute("SELECT status, stop_reason FROM runs WHERE run_id = 1").fetchone()
    if row is None:
        return  # named by _record_problems
    line = status_problem(row[0], row[1], [(link.kind, link.body) for link in links], fp)
    if line is not None:
        yield Problem(line, "status")


def input_problems(fp: Mapping[str, Any], inputs: Inputs) -> Iterator[Problem]:
    """What a resumed run would read now that differs from what the run started with."""
    was = fp["inputs"]
    if inputs.error is not None:
        why = f"fleet file {inputs.fleet_path} cannot be read now: {inputs.error}"
        yield Problem(why, "inputs")
        return
    what = changed(was["fleet"], inputs.fleet)
    if what:
        yield Problem(
            f"fleet file {inputs.fleet_path} changed since the run started ({what})", "inputs"
        )
    for region in sorted(set(was["traces"]) | set(inputs.traces)):
        if was["traces"].get(region) != inputs.traces.get(region):
            path = inputs.trace_paths.get(region, "")
            yield Problem(
                f"the trace of region {region} {path} changed since the run started".replace(
                    "  ", " "
                ),
                "inputs",
            )
            break
    if inputs.code is not None and inputs.code != was["code"]:
        yield Problem(
            f"the code changed since the run started ({describe_code(was['code'])} -> "
            f"{describe_code(inputs.code)})",
            "inputs",
        )


def changed(was: Mapping[str, str], now: Mapping[str, str]) -> str | None:
    """The first item whose digest differs, as "device rpi4", "device x added" ..."""
    for key in sorted(set(was) | set(now)):
        if key not in now:
            return f"{key} removed"
        if key not in was:
            return f"{key} added"
        if was[key] != now[key]:
            return key
    return None
