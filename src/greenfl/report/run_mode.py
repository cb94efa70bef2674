"""Whether a ledger holds an asynchronous run (issue 30), and what its "rounds" are called.

In an async run a ``rounds`` row is a server step (a buffer of updates applied, or one
update mixed in), so the report says "server step" where a synchronous run's says "round".
The mode is read from what the run wrote (its config JSON in the ``runs`` row, and the
``client_rounds.staleness`` column), never from greenfl.config: the report reads the ledger
only."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

ASYNC_MODE = "async"  # engine.mode of an asynchronous run, as its config JSON records it


def has_column(conn: sqlite3.Connection, table: str, column: str) -> bool:
    """Whether ``table`` has ``column`` (a ledger written before a schema change lacks it:
    the report opens ledgers read-only, so they are never migrated)."""
    return any(row[1] == column for row in conn.execute(f"PRAGMA table_info({table})"))


def ledger_config(conn: sqlite3.Connection) -> dict[str, Any]:
    """The run's config as its ``runs`` row recorded it ({} for a ledger with no run)."""
    row = conn.execute("SELECT config_json FROM runs ORDER BY run_id LIMIT 1").fetchone()
    if row is None:
        return {}
    config = json.loads(row[0])
    return config if isinstance(config, dict) else {}


def is_async_run(config: Mapping[str, Any], conn: sqlite3.Connection) -> bool:
    """True when the run was asynchronous: its config says ``engine.mode = "async"``, or
    (a config that predates the key, an edited one) some update was taken stale, which only
    the async loop writes (a synchronous round records staleness 0)."""
    engine = config.get("engine")
    if isinstance(engine, Mapping) and engine.get("mode") == ASYNC_MODE:
        return True
    if not has_column(conn, "client_rounds", "staleness"):
        return False
    row = conn.execute("SELECT 1 FROM client_rounds WHERE staleness > 0 LIMIT 1").fetchone()
    return row is not None


def step_word(asynchronous: bool) -> str:
    """What one ``rounds`` row is called in the report's text and axes."""
    return "server step" if asynchronous else "round"
