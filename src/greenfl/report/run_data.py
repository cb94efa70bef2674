"""One finished run, opened for reporting: its ledger (read-only), summary, config and fleet."""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any

from greenfl.core.errors import GreenflError
from greenfl.ledger.summary import summarize
from greenfl.report.run_mode import is_async_run, step_word


class ReportError(GreenflError):
    """A run folder cannot be reported on (no ledger, not a greenfl ledger, ...)."""


@dataclass
class RunData:
    path: Path
    conn: sqlite3.Connection
    summary: dict[str, Any]
    config: dict[str, Any]
    fleet: dict[str, Any]
    meta: dict[str, str]
    stop_reason: str | None
    status: str
    created_utc: str = ""

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def initial_accuracy(self) -> float:
        """The untrained model's accuracy (NaN for ledgers written before it was kept)."""
        raw = self.meta.get("initial_accuracy")
        return float(raw) if raw is not None else math.nan

    @cached_property
    def asynchronous(self) -> bool:
        """An async run (engine.mode = "async"): its ``rounds`` rows are server steps."""
        return is_async_run(self.config, self.conn)

    @property
    def step(self) -> str:
        """What a ``rounds`` row is called: "round", or "server step" in an async run."""
        return step_word(self.asynchronous)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> RunData:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_run(run_dir: str | Path) -> RunData:
    """Open a run folder (or its ledger.sqlite). summary.json is read where present; a run
    that crashed before writing it gets one computed from its ledger rows."""
    p = Path(run_dir)
    if p.is_file() and p.name.endswith(".sqlite"):
        p = p.parent
    ledger = p / "ledger.sqlite"
    if not ledger.is_file():
        raise ReportError(f"no ledger at {ledger}: not a greenfl run folder")
    conn = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        row = conn.execute(
            "SELECT config_json, fleet_json, status, stop_reason, created_utc FROM runs "
            "ORDER BY run_id LIMIT 1"
        ).fetchone()
        if row is None:
            raise ReportError(f"{ledger}: ledger holds no run")
        config = json.loads(row[0])
        fleet = json.loads(row[1])
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        summary_path = p / "summary.json"
        if summary_path.is_file():
            try:
                summary = json.loads(summary_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise ReportError(f"{summary_path}: invalid JSON: {exc}") from None
        else:
            target = (config.get("stop") or {}).get("target_accuracy")
            summary = summarize(conn, target, math.nan)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise ReportError(f"{ledger}: not a greenfl ledger ({exc})") from None
    except ReportError:
        conn.close()
        raise
    return RunData(p, conn, summary, config, fleet, meta, row[3], row[2], row[4])
