"""The columns a round's link in the ledger's hash chain covers (greenfl.ledger.chain).

A round link hashes the columns in effect at the link: those the chain's start link lists,
until a link of kind ``columns`` lists others. The schema grows (greenfl.ledger.schema.migrate
adds columns to an older ledger when it is opened to go on), so a greenfl whose columns are
not the ones in effect records a columns link before it writes a round
(greenfl.ledger.amend.record_columns): the rounds written before it are still hashed over
the columns they were written with, those after it over the new ones. A value in a column
a round does not hash (one added after the round was written, NULL in it until then) is
hashed with the round, so putting one there is an edit of that round."""

from __future__ import annotations

import itertools
import operator
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from greenfl.ledger.schema import CLIENT_ROUND_COLUMNS, ROUND_COLUMNS
from greenfl.ledger.store import RoundLink


@dataclass(frozen=True)
class Columns:
    """The ``rounds`` and ``client_rounds`` columns a round link hashes, in their order."""

    rounds: tuple[str, ...]
    clients: tuple[str, ...]

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> Columns | None:
        """The lists a start or columns link's body holds; None where it holds none (an
        edited body: the chain's digests name that)."""
        rounds, clients = body.get("round_columns"), body.get("client_columns")
        if not isinstance(rounds, list) or not isinstance(clients, list):
            return None
        # the round first: RoundLink.of reads it there
        if rounds[:1] != ["round"] or not {"round", "client_id"} <= set(clients):
            return None
        return cls(tuple(map(str, rounds)), tuple(map(str, clients)))


CURRENT = Columns(ROUND_COLUMNS, CLIENT_ROUND_COLUMNS)  # the columns this greenfl writes


def table_columns(conn: sqlite3.Connection) -> Columns:
    """The columns the ledger's tables have: this greenfl's, those the tables lack left
    out (a ledger not migrated yet), then any the tables have that it does not know."""

    def of(table: str, known: Sequence[str]) -> tuple[str, ...]:
        have = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
        return (*(c for c in known if c in have), *(c for c in have if c not in known))

    return Columns(of("rounds", ROUND_COLUMNS), of("client_rounds", CLIENT_ROUND_COLUMNS))


def projection(names: Sequence[str], columns: Sequence[str]) -> Callable[[Sequence[Any]], tuple]:
    """A table's rows (as ``SELECT *`` gives them) as one set of columns: the values of
    those columns in their order (NULL for one the table lacks), then, where a column the
    set leaves out holds a value (a column added after the round was written), its name
    and value: such a value is part of what the round's digest covers."""
    if list(names) == list(columns):  # the common case: the table is the columns
        return tuple
    at = [names.index(c) if c in names else None for c in columns]
    others = [(i, n) for i, n in enumerate(names) if n not in columns]
    # itemgetters, not a generator per row: verifying a ledger reads every row
    take = _taker(at)
    if not others:
        return take
    held, nulls = _getter([i for i, _ in others]), (None,) * len(others)

    def project(row: Sequence[Any]) -> tuple:
        if held(row) == nulls:
            return take(row)
        extra = [v for i, n in others if row[i] is not None for v in (n, row[i])]
        return (*take(row), *extra)

    return project


def round_digests(
    conn: sqlite3.Connection, by_round: Mapping[int, Columns], latest: Columns
) -> Iterator[tuple[int, str, str]]:
    """(round, rounds digest, client rows digest) for each round row, recomputed over
    the columns ``by_round`` gives its link (``latest`` for a round without one), as
    greenfl.ledger.store.RoundLink makes them."""
    rounds = conn.execute("SELECT * FROM rounds ORDER BY round")
    round_names = [d[0] for d in rounds.description]
    clients = conn.execute("SELECT * FROM client_rounds ORDER BY round, client_id")
    client_names = [d[0] for d in clients.description]
    round_at, client_round_at = round_names.index("round"), client_names.index("round")
    projections: dict[Columns, tuple[Callable[[Sequence[Any]], tuple], ...]] = {}
    groups = itertools.groupby(clients, key=lambda r: r[client_round_at])
    pending = next(groups, None)
    for row in rounds:
        rnd = row[round_at]
        while pending is not None and pending[0] < rnd:
            pending = next(groups, None)  # client rows of a deleted round: its link says so
        rows: list[Any] = []
        if pending is not None and pending[0] == rnd:
            rows = list(pending[1])
            pending = next(groups, None)
        cols = by_round.get(rnd, latest)
        if cols not in projections:
            projections[cols] = (
                projection(round_names, cols.rounds),
                projection(client_names, cols.clients),
            )
        of_round, of_client = projections[cols]
        client_id_at = cols.clients.index("client_id")
        link = RoundLink.of(of_round(row), [of_client(r) for r in rows], client_id_at, None)
        yield rnd, link.rounds_sha, link.clients_sha


def _taker(at: Sequence[int | None]) -> Callable[[Sequence[Any]], tuple]:
    """The values at ``at`` of a row, NULL for None (a column the table lacks: dropped
    after it was written)."""
    if None not in at:
        return _getter([i for i in at if i is not None])

    def take(row: Sequence[Any]) -> tuple:
        return tuple(None if i is None else row[i] for i in at)

    return take


def _getter(at: Sequence[int]) -> Callable[[Sequence[Any]], tuple]:
    """The values at ``at`` of a row, always as a tuple (itemgetter of one gives the value)."""
    if len(at) == 1:
        (i,) = at
        return lambda row: (row[i],)
    return operator.itemgetter(*at)
