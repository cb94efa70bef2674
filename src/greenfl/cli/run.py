"""``greenfl run``: one experiment, with a live progress bar and a final summary."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from greenfl.api import RunResult, run
from greenfl.cli.lifecycle import reported_interrupt, resolve_config
from greenfl.config import RunConfig
from greenfl.core.errors import ConfigError
from greenfl.engine.records import RoundRecord
from greenfl.engine.session import check_out_dir
from greenfl.report.headline import format_carbon, format_energy
from greenfl.report.terminal import print_summary

ConfigArg = Annotated[
    Path | None,  # noqa: UP007 - typer needs Optional on 3.10
    typer.Argument(help="Config file (TOML or YAML). Omit for the built-in offline quickstart."),
]
SetOpt = Annotated[
    list[str] | None,  # noqa: UP007
    typer.Option("--set", help="Override a config key: --set train.rounds=50 (repeatable)."),
]
OutOpt = Annotated[
    Path | None,  # noqa: UP007
    typer.Option("--out", help="Output folder (default: runs/run-YYYYmmdd-HHMMSS)."),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace a ledger already in --out.")]
ResumeOpt = Annotated[
    bool,
    typer.Option("--resume", help="Continue the run in --out after Ctrl-C, SIGTERM or a crash."),
]


def default_out_dir() -> Path:
    base = Path("runs") / datetime.now().strftime("run-%Y%m%d-%H%M%S")
    out, n = base, 1
    while out.exists():  # two runs in one second must not share a folder
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


def run_with_progress(
    cfg: RunConfig,
    out: Path,
    quiet: bool,
    console: Console,
    overwrite: bool = False,
    resume: bool = False,
) -> RunResult:
    """The run, with a progress bar on ``console`` unless ``quiet``."""
    if quiet:
        return run(cfg, out, overwrite=overwrite, resume=resume)
    progress = Progress(
        TextColumn("[bold]round {task.completed:.0f}/{task.total:.0f}"),
        BarColumn(),
        TextColumn("{task.fields[metrics]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    task = progress.add_task("rounds", total=cfg.train.rounds, metrics="starting...")

    def on_round(rec: RoundRecord) -> None:
        progress.update(
            task,
            completed=rec.round,
            metrics=(
                f"acc {rec.accuracy:.4f}  loss {rec.loss:.4f}  "
                # Scaled as the report scales them: J, then Wh, then kWh as the run grows.
                f"{format_energy(rec.cum_energy_j)}  {format_carbon(rec.cum_carbon_g)}"
            ),
        )

    with progress:
        return run(cfg, out, on_round=on_round, overwrite=overwrite, resume=resume)


def write_report_after_run(cfg: RunConfig, out_dir: Path) -> Path | None:
    """report.html beside the ledger, unless ``report.html = false``."""
    if not cfg.report.html:
        return None
    from greenfl.analysis.centralised import write_estimate_for_run
    from greenfl.report.html import write_run_report

    # The report reads the centralised comparison from the run folder, never computes it.
    write_estimate_for_run(out_dir)
    return write_run_report(out_dir)


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_cmd(
        config: ConfigArg = None,
        set_: SetOpt = None,
        out: OutOpt = None,
        quiet: QuietOpt = False,
        force: ForceOpt = False,
        resume: ResumeOpt = False,
    ) -> None:
        """Run a federated experiment and write its ledger, summary and report."""
        if resume and out is None:
            raise ConfigError("--resume needs --out, the folder of the run to continue")
        if resume and force:
            raise ConfigError("--resume and --force exclude each other")
        out_dir = out or default_out_dir()
        check_out_dir(out_dir)
        cfg = resolve_config(config, set_ or [], out_dir, resume)
        console = Console(stderr=True)
        with reported_interrupt():
            result = run_with_progress(cfg, out_dir, quiet, console, force, resume)
        report = write_report_after_run(cfg, out_dir) if cfg.engine.accounting else None
        if not quiet:
            print_run_end(console, result, out_dir, report)


def print_run_end(console: Console, result: RunResult, out_dir: Path, report: Path | None) -> None:
    """The summary table, what was written, and where the report is."""
    if not result.config.engine.accounting:
        console.print(f"final accuracy {result.final_accuracy:.4f} (accounting off)")
        return
    conn = sqlite3.connect(out_dir / "ledger.sqlite")
    try:
        row = conn.execute("SELECT value FROM meta WHERE key='initial_accuracy'").fetchone()
        print_summary(Console(), result.summary, conn, float(row[0]), result.stop_reason)
    finally:
        conn.close()
    extra = ", report.html" if report else ""
    console.print(f"wrote {out_dir}/ledger.sqlite, summary.json, config.json{extra}")
    if report is not None:
        console.print(f"open {report} in a browser for the full report")
