"""A round's client rows held as columns, as the accounting computes them: numpy arrays stay
arrays and names stay indices until the ledger's writer makes Python values of them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Named:
    """A column of names kept as indices into ``names`` until it is read."""

    names: Sequence[str]
    index: np.ndarray

    def tolist(self) -> list[str]:
        names = self.names
        return [names[i] for i in self.index.tolist()]

    def __len__(self) -> int:
        return len(self.index)


@dataclass(frozen=True)
class Constant:
    """A column with one value for every row (a round's number, its start time)."""

    value: Any
    n: int

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


Packed = tuple[int, bytes, bytes, tuple[tuple[Any, ...], ...]]
"""Rows as the ledger writer sends them: (rows, float64 block, int64 block, a descriptor per
column). Descriptors: ("f", j) and ("i", j), row j of a block; ("names", names, j), row j of
the int block indexing ``names``; ("const", value); ("list", values)."""


def pack_rows(rows: Sequence[Mapping[str, Any]], order: Sequence[str]) -> tuple[Packed, list[Any]]:
    """``rows`` (ColumnRows, or one mapping per client) packed in ``order``, and the rows'
    statuses (for the writer's check). Numeric columns go into one float64 and one int64
    block, so a round is handed over as two copies, not a Python object per value (the
    writer makes the values: greenfl.ledger.store.unpack_rows)."""
    if not isinstance(rows, ColumnRows):
        desc = tuple(("list", [r[c] for r in rows]) for c in order)
        return (len(rows), b"", b"", desc), [r["status"] for r in rows]
    floats: list[np.ndarray] = []
    ints: list[np.ndarray] = []
    out: list[tuple[Any, ...]] = []
    for name in order:
        v = rows.columns[name]
        if isinstance(v, Named):
            out.append(("names", tuple(v.names), len(ints)))
            ints.append(v.index)
        elif isinstance(v, Constant):
            out.append(("const", v.value))
        elif isinstance(v, np.ndarray) and v.dtype.kind == "f":
            out.append(("f", len(floats)))
            floats.append(v)
        elif isinstance(v, np.ndarray) and v.dtype.kind in "iub":
            out.append(("i", len(ints)))
            ints.append(v)
        else:
            out.append(("list", v.tolist() if isinstance(v, np.ndarray) else list(v)))
    # concatenate, not stack: one C call, and column j is then values [j*n, (j+1)*n)
    fblock = np.concatenate(floats, dtype=np.float64).tobytes() if floats else b""
    iblock = np.concatenate(ints, dtype=np.int64).tobytes() if ints else b""
    return (len(rows), fblock, iblock, tuple(out)), rows.column("status")
