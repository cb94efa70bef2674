"""A round's client rows held as columns, as the accounting computes them: numpy arrays stay
arrays and names stay indices until the ledger's writer makes Python values of them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np


class Named:
    """A column of names kept as indices into ``names`` until it is read. (Plain classes
    with slots, these two: a cohort's rows make several every round.)"""

    __slots__ = ("names", "index")

    def __init__(self, names: Sequence[str], index: np.ndarray) -> None:
        self.names = names
        self.index = index

    def tolist(self) -> list[str]:
        names = self.names
        return [names[i] for i in self.index.tolist()]

    def __len__(self) -> int:
        return len(self.index)


class Constant:
    """A column with one value for every row (a round's number, its start time)."""

    __slots__ = ("value", "n")

    def __init__(self, value: Any, n: int) -> None:
        self.value = value
        self.n = n

    def tolist(self) -> list[Any]:
        return [self.value] * self.n

    def __len__(self) -> int:
        return self.n


Column = list[Any] | np.ndarray | Named | Constant


class ColumnRows(Sequence[dict[str, Any]]):
    """A cohort's ledger rows held as columns (lists, numpy arrays, Named, Constant). Reads
    as a sequence of one dict per client (plain Python values); the ledger writer packs the
    columns whole, because building a Python object per value dominated accounting's cost."""

    def __init__(self, columns: dict[str, Column]) -> None:
        self.columns = columns
        self._n = len(next(iter(columns.values()))) if columns else 0

    def __len__(self) -> int:
        return self._n

    def column(self, name: str) -> list[Any]:
        values = self.columns[name]
        return values if isinstance(values, list) else values.tolist()

    def __getitem__(self, i: int) -> dict[str, Any]:  # type: ignore[override]
        if not -self._n <= i < self._n:
            raise IndexError(i)
        return {k: self.column(k)[i] for k in self.columns}

    def as_tuples(self, order: Sequence[str]) -> list[tuple[Any, ...]]:
        return list(zip(*(self.column(c) for c in order), strict=True))


class DeferredRows(Sequence[dict[str, Any]]):
    """A round's rows whose numbers are computed when first read, or when the ledger packs
    them: ``build(payloads)`` makes the ColumnRows of many rounds in one pass. The round loop
    then keeps only what it needs each round (its totals), and numpy's fixed cost per call is
    paid once per batch of rounds, not once per round. The statuses are known already (the
    writer checks them each round)."""

    __slots__ = ("build", "payload", "status", "_rows")

    def __init__(
        self,
        build: Callable[[Sequence[Any]], list[ColumnRows]],
        payload: Any,
        status: list[str],
    ) -> None:
        self.build = build
        self.payload = payload
        self.status = status
        self._rows: ColumnRows | None = None

    def rows(self) -> ColumnRows:
        if self._rows is None:
            self._rows = self.build([self.payload])[0]
        return self._rows

    def __len__(self) -> int:
        return len(self.status)

    def column(self, name: str) -> list[Any]:
        return self.status if name == "status" else self.rows().column(name)

    def __getitem__(self, i: int) -> dict[str, Any]:  # type: ignore[override]
        return self.rows()[i]


def built(rounds: Sequence[Sequence[Mapping[str, Any]]]) -> list[Sequence[Mapping[str, Any]]]:
    """``rounds`` with each DeferredRows replaced by its ColumnRows, built together with the
    others of the same builder."""
    pending: dict[Callable[[Sequence[Any]], list[ColumnRows]], list[DeferredRows]] = {}
    for rows in rounds:
        if isinstance(rows, DeferredRows) and rows._rows is None:
            pending.setdefault(rows.build, []).append(rows)
    for build, group in pending.items():
        for rows, made in zip(group, build([r.payload for r in group]), strict=True):
            rows._rows = made
    return [r.rows() if isinstance(r, DeferredRows) else r for r in rounds]


PackedRounds = tuple[bytes, bytes, list[tuple[int, tuple[tuple[Any, ...], ...]]]]
"""Rounds of rows as the ledger writer sends them: (float64 block, int64 block, per round its
row count and a descriptor per column). Descriptors: ("f", at) and ("i", at), the column's
values from element ``at`` of a block; ("names", names, at), indices into ``names`` from
``at`` of the int block; ("const", value); ("list", values)."""


def statuses(rows: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The rows' statuses, for the writer's check."""
    if isinstance(rows, (ColumnRows, DeferredRows)):  # a tuple: a union is built per call
        return rows.column("status")
    return [r["status"] for r in rows]


def pack_rounds(
    rounds: Sequence[Sequence[Mapping[str, Any]]], order: Sequence[str]
) -> PackedRounds:
    """Rounds of rows (ColumnRows, or one mapping per client) packed column by column in
    ``order``. The numeric columns of all of them go into one float64 and one int64 block:
    handing rounds over costs two copies, not a Python object per value (the writer makes
    the values: greenfl.ledger.store.unpack_rounds)."""
    floats: list[np.ndarray] = []
    ints: list[np.ndarray] = []
    at_f = at_i = 0
    packed: list[tuple[int, tuple[tuple[Any, ...], ...]]] = []
    for rows in built(rounds):
        n = len(rows)
        if not isinstance(rows, ColumnRows):
            # A column a mapping leaves out is NULL (the table's NOT NULL refuses it where
            # it is required).
            packed.append((n, tuple(("list", [r.get(c) for r in rows]) for c in order)))
            continue
        out: list[tuple[Any, ...]] = []
        for name in order:
            v = rows.columns[name]
            if isinstance(v, Named):
                out.append(("names", tuple(v.names), at_i))
                ints.append(v.index)
                at_i += n
            elif isinstance(v, Constant):
                out.append(("const", v.value))
            elif isinstance(v, np.ndarray) and v.dtype.kind == "f":
                out.append(("f", at_f))
                floats.append(v)
                at_f += n
            elif isinstance(v, np.ndarray) and v.dtype.kind in "iub":
                out.append(("i", at_i))
                ints.append(v)
                at_i += n
            else:
                out.append(("list", v.tolist() if isinstance(v, np.ndarray) else list(v)))
        packed.append((n, tuple(out)))
    # concatenate: one C call, and each column is then a run of the flat block
    fblock = np.concatenate(floats, dtype=np.float64).tobytes() if floats else b""
    iblock = np.concatenate(ints, dtype=np.int64).tobytes() if ints else b""
    return fblock, iblock, packed
