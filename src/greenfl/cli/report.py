"""``greenfl report``: the HTML report of one run, or of several runs side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from greenfl.core.errors import ConfigError

RunsArg = Annotated[
    list[Path],
    typer.Argument(
        help="Run folder(s). One: its report.html. Several, or a folder of runs (e.g. the "
        "--out of greenfl compare): runs overlaid, with ratios to the first."
    ),
]
OutOpt = Annotated[
    Path | None,  # noqa: UP007 - typer needs Optional on 3.10
    typer.Option("--out", help="Folder for report.html (required for several runs)."),
]
OpenOpt = Annotated[bool, typer.Option("--open", help="Open the report in a web browser.")]


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report_cmd(runs: RunsArg, out: OutOpt = None, open_: OpenOpt = False) -> None:
        """Write a self-contained HTML report (no network needed to view it)."""
        from greenfl.report.compare import expand_run_dirs, write_compare_report
        from greenfl.report.run_report import write_run_report

        dirs = expand_run_dirs(runs)
        if len(dirs) == 1:
            dest = write_run_report(dirs[0], None if out is None else out / "report.html")
        else:
            if out is None:
                raise ConfigError(f"--out DIR is required to report on {len(dirs)} runs")
            dest = write_compare_report(dirs, out)
        typer.echo(f"wrote {dest}")
        if open_:
            import webbrowser

            webbrowser.open(dest.resolve().as_uri())
