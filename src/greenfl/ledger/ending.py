"""How a run ended, in the ledger's hash chain (greenfl.ledger.chain): when the writer marks
a run ``completed``, ``interrupted`` or ``failed`` it appends, in the same transaction, a
link of kind ``end`` whose body records the status, the stop reason, the last round and
when. Verification then holds ``runs.status`` against the chain, so a status edited after
the run ended (``interrupted`` -> ``completed``) is named, not vouched for.

What the chain says of the run's state: the status of its last ``end`` link, unless a round
link follows that link (the run was resumed and went on: running again). ``change`` and
``columns`` links after an end link do not reopen the run (``--accept-changes`` and an
upgrade write them before a resume's first round).

A resume marks the ledger ``running`` again without a link of its own: until its first
round is committed the chain still says how the run ended before. A ``running`` ledger is
therefore never reported as edited: it is a run in progress, one killed without a chance to
record its end (``kill -9``, power loss), or one resumed that has committed no round since.

Format evolution, as for the columns (greenfl.ledger.columns): a chain started by this
greenfl says in its start link that it records endings (``ENDS_KEY``); one started by an
older greenfl does not, and its ended status is taken as written until a greenfl that
writes end links ends the run. From then on it is checked like any other."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from greenfl.ledger.store import chain_head, link_digest

END = "end"  # the kind of link that records how the run ended
ENDS_KEY = "end_links"  # in a start link's body: the chain records every ending
RUNNING = "running"


def end_run(conn: sqlite3.Connection, status: str, stop_reason: str | None) -> None:
    """(in a transaction) The run's final status in ``runs``, and the chain's end link
    recording it: both or neither, so a ledger never says it ended without the chain."""
    conn.execute(
        "UPDATE runs SET status = ?, stop_reason = ? WHERE run_id = 1", (status, stop_reason)
    )
    append_end(conn, status, stop_reason)


def append_end(conn: sqlite3.Connection, status: str, stop_reason: str | None) -> None:
    """(in a transaction) An end link recording ``status`` and ``stop_reason``, the last
    round the ledger holds and when; none in a ledger without a chain (greenfl before the
    chain: nothing to append it to)."""
    prev = chain_head(conn)
    if prev is None:
        return
    (last,) = conn.execute("SELECT MAX(round) FROM rounds").fetchone()
    body = json.dumps(
        {
            "status": status,
            "stop_reason": stop_reason,
            "last_round": last,
            "when_utc": datetime.now(timezone.utc).isoformat(),
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    conn.execute(
        "INSERT INTO chain (kind, body, digest) VALUES (?, ?, ?)",
        (END, body, link_digest(prev, END, body)),
    )


def chain_ending(links: Iterable[tuple[str, str | None]]) -> dict[str, Any] | None:
    """The body of the end link that says how the run stands, from the links' (kind, body)
    in order: the last end link with no round link after it; None while the chain says the
    run is running (no end link yet, or rounds written since the last)."""
    ending: dict[str, Any] | None = None
    for kind, body in links:
        if kind == END:
            ending = _body(body)
        elif kind == "round":
            ending = None
    return ending


def records_endings(
    start: Mapping[str, Any] | None, links: Iterable[tuple[str, str | None]]
) -> bool:
    """Whether an ended status must have its end link: the chain was started by a greenfl
    that writes them, or one has ended the run at least once."""
    if start is not None and start.get(ENDS_KEY) is True:
        return True
    return any(kind == END for kind, _ in links)


def status_problem(
    status: str,
    stop_reason: str | None,
    links: Iterable[tuple[str, str | None]],
    start: Mapping[str, Any] | None,
) -> str | None:
    """The line naming how ``runs.status`` (and its stop reason) disagrees with the chain,
    None where they agree. ``links``: every link's (kind, body), in order; ``start``: the
    start link's body."""
    links = list(links)
    ending = chain_ending(links)
    if status == RUNNING:
        return None  # in progress, killed, or resumed with no round since (module doc)
    if ending is None:
        if not records_endings(start, links):
            return None  # an older greenfl's chain: it recorded no endings
        return _edited("running", status)
    said = ending.get("status")
    if said != status:
        return _edited(str(said), status)
    if ending.get("stop_reason") != stop_reason:
        return (
            "the run's stop reason was edited after it was written: the chain says "
            f"{_quoted(ending.get('stop_reason'))}, the ledger {_quoted(stop_reason)}"
        )
    return None


def not_ended_note(
    status: str, links: Iterable[tuple[str, str | None]], last_round: int | None
) -> str | None:
    """For a ledger still ``running``, what that means, in one line (None for an ended
    run): not an edit, but not a finished run either."""
    if status != RUNNING:
        return None
    rounds = f"rounds 1-{last_round}" if last_round else "no rounds"
    ending = chain_ending(links)
    if ending is not None:
        return (
            f"the run was resumed after it ended {ending.get('status')} and has committed no "
            "round since (still starting, or stopped without recording it); the digest "
            f"covers {rounds}"
        )
    return (
        "the run has not ended: it is still running, or was stopped without a chance to "
        f"record its end (kill -9, power loss); the digest covers {rounds}"
    )


def _edited(chain_says: str, ledger_says: str) -> str:
    return (
        "the run's status was edited after it was written: the chain says "
        f"{chain_says}, the ledger {ledger_says}"
    )


def _quoted(reason: str | None) -> str:
    return "no reason" if reason is None else json.dumps(reason)


def _body(body: str | None) -> dict[str, Any]:
    """An end link's body; {} where it is not a JSON object (an edited body: the chain's
    digests name that first)."""
    try:
        parsed = json.loads(body or "")
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
