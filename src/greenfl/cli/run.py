"""``greenfl run``: one experiment, with progress and a final summary; and the option types
the run-like commands share. Importing this module imports neither torch nor the engine:
``greenfl --help`` and every usage error answer at once."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from greenfl.core.errors import ConfigError

if TYPE_CHECKING:
    from rich.console import Console

    from greenfl.api import RunResult
    from greenfl.config import RunConfig

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
AcceptOpt = Annotated[
    bool,
    typer.Option(
        "--accept-changes",
        help="On --resume: go on although the ledger, fleet file, traces or code changed "
        "since the run started, recording what changed in the ledger (docs/integrity.md).",
    ),
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
    """The run, with progress on ``console`` unless ``quiet``: a bar on a terminal, plain
    lines elsewhere (so a log file fills as the run goes)."""
    from greenfl.api import run
    from greenfl.cli.progress import BarProgress, PlainProgress

    if quiet:
        return run(cfg, out, overwrite=overwrite, resume=resume)
    rounds = cfg.train.rounds
    display = (
        BarProgress(rounds, console) if console.is_terminal else PlainProgress(rounds, sys.stderr)
    )
    with display:
        return run(
            cfg,
            out,
            on_round=display.on_round,
            on_progress=display.on_progress,
            overwrite=overwrite,
            resume=resume,
        )


def write_report_after_run(cfg: RunConfig, out_dir: Path) -> Path | None:
    """report.html beside the ledger, unless ``report.html = false``."""
    if not cfg.report.html:
        return None
    from greenfl.analysis.centralised import write_estimate_for_run
    from greenfl.report.run_report import write_run_report

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
        accept_changes: AcceptOpt = False,
    ) -> None:
        """Run a federated experiment and write its ledger, summary and report."""
        if resume and out is None:
            raise ConfigError("--resume needs --out, the folder of the run to continue")
        if resume and force:
            raise ConfigError("--resume and --force exclude each other")
        if accept_changes and not resume:
            raise ConfigError("--accept-changes goes with --resume")
        from rich.console import Console

        from greenfl.cli.lifecycle import accept_before_resume, reported_interrupt, resolve_config
        from greenfl.core.files import check_out_dir

        out_dir = out or default_out_dir()
        check_out_dir(out_dir)
        if accept_changes:
            accept_before_resume(out_dir)
        cfg = resolve_config(config, set_ or [], out_dir, resume)
        console = Console(stderr=True)
        with reported_interrupt():
            result = run_with_progress(cfg, out_dir, quiet, console, force, resume)
        report = write_report_after_run(cfg, out_dir) if cfg.engine.accounting else None
        if not quiet:
            print_run_end(console, result, out_dir, report)


def print_run_end(console: Console, result: RunResult, out_dir: Path, report: Path | None) -> None:
    """The summary table, what was written, and where the report is."""
    import sqlite3

    from rich.console import Console as RichConsole

    from greenfl.report.terminal import print_summary

    if not result.config.engine.accounting:
        console.print(f"final accuracy {result.final_accuracy:.4f} (accounting off)")
        return
    conn = sqlite3.connect(out_dir / "ledger.sqlite")
    try:
        row = conn.execute("SELECT value FROM meta WHERE key='initial_accuracy'").fetchone()
        print_summary(RichConsole(), result.summary, conn, float(row[0]), result.stop_reason)
    finally:
        conn.close()
    extra = ", report.html" if report else ""
    console.print(f"wrote {out_dir}/ledger.sqlite, summary.json, config.json{extra}")
    if report is not None:
        console.print(f"open {report} in a browser for the full report")
