"""``greenfl export``: the ledger's tables as CSV, JSON or Parquet files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

RunArg = Annotated[Path, typer.Argument(help="Run folder (or its ledger.sqlite).")]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="csv, json or parquet.")]
OutOpt = Annotated[
    Path | None,  # noqa: UP007 - typer needs Optional on 3.10
    typer.Option("--out", help="Folder for the files (default: RUN_DIR/export)."),
]


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export_cmd(run: RunArg, format_: FormatOpt = "csv", out: OutOpt = None) -> None:
        """Write runs, rounds, client_rounds and meta, one file per table."""
        from greenfl.report.export import export_ledger

        for path in export_ledger(run, format_, out):
            typer.echo(f"wrote {path}")
