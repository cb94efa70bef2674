"""Reading a run's ledger with SQL in tests: ``rows(out_dir, "SELECT ...")``."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def rows(out_dir: Path, sql: str) -> list[tuple]:
    """The rows ``sql`` selects from ``out_dir``'s ledger.sqlite."""
    conn = sqlite3.connect(out_dir / "ledger.sqlite")
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()
