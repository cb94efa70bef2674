"""Reading a ledger back: records, or pandas DataFrames where pandas is installed."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greenfl.core.errors import GreenflError, MissingExtraError


@dataclass(frozen=True)
class Ledger:
    path: Path
    run: dict[str, Any]
    rounds: list[dict[str, Any]]
    client_rounds: list[dict[str, Any]]
    meta: dict[str, str]

    @property
    def config(self) -> dict[str, Any]:
        return json.loads(self.run["config_json"])

    @property
    def fleet(self) -> dict[str, Any]:
        return json.loads(self.run["fleet_json"])

    def to_pandas(self) -> dict[str, Any]:
        """{'rounds': DataFrame, 'client_rounds': DataFrame}."""
        try:
            import pandas as pd
        except ImportError:
            raise MissingExtraError("to_pandas needs pandas: pip install pandas") from None
        return {
            "rounds": pd.DataFrame(self.rounds),
            "client_rounds": pd.DataFrame(self.client_rounds),
        }


def _rows(conn: sqlite3.Connection, sql: str) -> list[dict[str, Any]]:
    cur = conn.execute(sql)
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def read_ledger(path: str | Path) -> Ledger:
    """Read ``ledger.sqlite`` (or the run folder holding it)."""
    p = Path(path)
    if p.is_dir():
        p = p / "ledger.sqlite"
    if not p.is_file():
        raise GreenflError(f"no ledger at {p}")
    conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
    try:
        runs = _rows(conn, "SELECT * FROM runs")
        if not runs:
            raise GreenflError(f"{p}: ledger holds no run")
        return Ledger(
            path=p,
            run=runs[0],
            rounds=_rows(conn, "SELECT * FROM rounds ORDER BY round"),
            client_rounds=_rows(conn, "SELECT * FROM client_rounds ORDER BY round, client_id"),
            meta=dict(conn.execute("SELECT key, value FROM meta").fetchall()),
        )
    except sqlite3.DatabaseError as exc:
        raise GreenflError(f"{p}: not a greenfl ledger ({exc})") from None
    finally:
        conn.close()
