"""Exporting the ledger's tables (runs, rounds, client_rounds, meta) to CSV, JSON or Parquet,
one file per table, for pandas, R, spreadsheets or a data warehouse.

CSV writes floats with ``repr`` (exact round trip) and SQL NULL as an empty field."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path
from typing import Any, Literal

from greenfl.core.errors import ConfigError, MissingExtraError
from greenfl.report.run_data import ReportError

TABLES: tuple[str, ...] = ("runs", "rounds", "client_rounds", "meta")
Format = Literal["csv", "json", "parquet"]
FORMATS: tuple[str, ...] = ("csv", "json", "parquet")


def read_table(conn: sqlite3.Connection, table: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    if table not in TABLES:
        raise ValueError(f"not an exported table: {table!r}")
    order = {"rounds": " ORDER BY round", "client_rounds": " ORDER BY round, client_id"}
    cur = conn.execute(f"SELECT * FROM {table}{order.get(table, '')}")
    return [c[0] for c in cur.description], cur.fetchall()


def column_types(conn: sqlite3.Connection, table: str) -> dict[str, str]:
    """Declared SQLite type per column (INTEGER, REAL, TEXT)."""
    return {row[1]: row[2].upper() for row in conn.execute(f"PRAGMA table_info({table})")}


def _write_csv(path: Path, cols: list[str], rows: list[tuple[Any, ...]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for row in rows:
            w.writerow(["" if v is None else repr(v) if isinstance(v, float) else v for v in row])


def _write_json(path: Path, cols: list[str], rows: list[tuple[Any, ...]]) -> None:
    records = [dict(zip(cols, row, strict=True)) for row in rows]
    path.write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")


def _write_parquet(
    path: Path, cols: list[str], rows: list[tuple[Any, ...]], types: dict[str, str]
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow_type = {"INTEGER": pa.int64(), "REAL": pa.float64(), "TEXT": pa.string()}
    schema = pa.schema([(c, arrow_type.get(types.get(c, "TEXT"), pa.string())) for c in cols])
    columns = {c: [row[i] for row in rows] for i, c in enumerate(cols)}
    pq.write_table(pa.Table.from_pydict(columns, schema=schema), path)


def export_ledger(run_dir: str | Path, fmt: str, out_dir: str | Path | None = None) -> list[Path]:
    """Write each table to ``out_dir`` (default RUN_DIR/export) as TABLE.<fmt>."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise MissingExtraError(
                "parquet export needs pyarrow: pip install pyarrow (or use --format csv|json)"
            ) from None
    run = Path(run_dir)
    ledger = run / "ledger.sqlite" if run.is_dir() else run
    if not ledger.is_file():
        raise ReportError(f"no ledger at {ledger}")
    dest = Path(out_dir) if out_dir is not None else ledger.parent / "export"
    dest.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    written = []
    try:
        for table in TABLES:
            cols, rows = read_table(conn, table)
            path = dest / f"{table}.{fmt}"
            if fmt == "csv":
                _write_csv(path, cols, rows)
            elif fmt == "json":
                _write_json(path, cols, rows)
            else:
                _write_parquet(path, cols, rows, column_types(conn, table))
            written.append(path)
    except sqlite3.DatabaseError as exc:
        raise ReportError(f"{ledger}: not a greenfl ledger ({exc})") from None
    finally:
        conn.close()
    return written


def read_csv_export(path: str | Path, types: dict[str, str]) -> list[tuple[Any, ...]]:
    """Rows of an exported CSV, typed back by the ledger's column types."""
    conv = {"INTEGER": int, "REAL": float}
    with Path(path).open(newline="", encoding="utf-8") as fh:
        r = csv.reader(fh)
        cols = next(r)
        return [
            tuple(
                None if v == "" else conv.get(types.get(c, "TEXT"), str)(v)
                for c, v in zip(cols, row, strict=True)
            )
            for row in r
        ]
