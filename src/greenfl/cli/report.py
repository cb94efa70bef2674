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
AcceptOpt = Annotated[
    bool,
    typer.Option(
        "--accept-changes",
        help="Report although a ledger was edited since it was written, recording what "
        "changed in that ledger (docs/integrity.md).",
    ),
]


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report_cmd(
        runs: RunsArg, out: OutOpt = None, open_: OpenOpt = False, accept_changes: AcceptOpt = False
    ) -> None:
        """Write a self-contained HTML report (no network needed to view it)."""
        from greenfl.report.compare import expand_run_dirs, write_compare_report
        from greenfl.report.run_report import write_run_report

        dirs = expand_run_dirs(runs)
        for run_dir in dirs:
            _check(run_dir, accept_changes)
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


def _check(run_dir: Path, accept: bool) -> None:
    """The ledger's chain and record, before its report: an edit is refused in one line,
    or recorded with --accept-changes. A ledger written before greenfl kept a chain is
    reported with a note (there is nothing to check it against)."""
    import sys

    from greenfl.ledger.integrity import check_for_report, has_chain

    if not has_chain(run_dir):
        print(f"note: {run_dir} has no hash chain (an older ledger): not verified", file=sys.stderr)
        return
    for line in check_for_report(run_dir, accept):
        print(f"accepted and recorded in the ledger: {line}", file=sys.stderr)
