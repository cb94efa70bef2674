"""A round's client rows held as columns, as the accounting computes them: numpy arrays stay
arrays and names stay indices until the ledger writes them."""

from __future__ import annotations

from collections.abc import Sequence
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


Column = list[Any] | np.ndarray | Named


class ColumnRows(Sequence[dict[str, Any]]):
    """A cohort's ledger rows held as columns: lists, numpy arrays, or Named. Reads as a
    sequence of one dict per client (plain Python values); the ledger writer takes the
    columns as tuples directly, because building and unpacking a dict per client dominated
    accounting's cost."""

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
