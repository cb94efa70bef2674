"""``greenfl compare A.toml B.toml ... [--seeds 0,1,2] [--out DIR]``: run each config over the
seeds, print one table with each metric's mean ± std and its ratio to the first config, and
write compare.csv, compare.json and report.html, the HTML comparison (run folders, each
with its own report.html, go under DIR/<config>-seed<s>/).

``greenfl compare RUN_A RUN_B ... [--out DIR]``: the same table and files for runs already
finished, read from their folders (a folder of runs, such as an earlier comparison's --out,
contributes each run in it; runs named <config>-seed<s> are grouped by config)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from greenfl.core.errors import ConfigError

if TYPE_CHECKING:  # the command imports what runs and reports when it is called
    from greenfl.config import RunConfig

ConfigsArg = Annotated[
    list[Path],
    typer.Argument(
        help="Config files to run, or finished run folders to compare as they are; the "
        "first is the baseline."
    ),
]
SeedsOpt = Annotated[
    str | None,  # noqa: UP007 - typer needs Optional on 3.10
    typer.Option("--seeds", help="Comma-separated seeds, e.g. 0,1,2 (default: each config's)."),
]
OutOpt = Annotated[
    Path | None,  # noqa: UP007
    typer.Option("--out", help="Output folder (default: runs/compare-YYYYmmdd-HHMMSS)."),
]
SetOpt = Annotated[
    list[str] | None,  # noqa: UP007
    typer.Option("--set", help="Override a key in every config: --set train.rounds=50."),
]


def parse_seeds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds expects comma-separated integers, got {text!r}") from None
    if not seeds or any(s < 0 for s in seeds):
        raise ConfigError(f"--seeds expects non-negative integers, got {text!r}")
    return seeds


def register(app: typer.Typer) -> None:
    @app.command("compare")
    def compare_cmd(
        configs: ConfigsArg,
        seeds: SeedsOpt = None,
        out: OutOpt = None,
        set_: SetOpt = None,
        audit: Annotated[
            bool,
            typer.Option(
                "--audit",
                help="After each run, its membership-inference audit (loss attack; "
                "greenfl audit RUN --shadow 0), compared as membership AUC.",
            ),
        ] = False,
    ) -> None:
        """Run configs over seeds and compare accuracy, time, energy, carbon, and the
        privacy, attack and audit figures where runs have them."""
        from rich.console import Console

        from greenfl.analysis.compare_seeds import compare
        from greenfl.analysis.seed_stats import write_outputs
        from greenfl.report.compare import config_groups, unique_names, write_compare_report
        from greenfl.report.compare_terminal import compare_table

        seed_list = parse_seeds(seeds)
        out_dir = out or Path("runs") / datetime.now().strftime("compare-%Y%m%d-%H%M%S")
        err = Console(stderr=True)
        finished = finished_runs(configs)
        if finished is not None:
            given = [f for f, v in (("--seeds", seeds), ("--set", set_), ("--audit", audit)) if v]
            if given:
                raise ConfigError(
                    f"{', '.join(given)} apply to config files that compare runs; run folders "
                    "are compared as they are"
                )
            results = config_groups(finished, unique_names(finished))
        else:
            run_fn = _run_and_audit if audit else _run
            results = compare(
                configs, seed_list, out_dir, set_ or [], run_fn=run_fn, on_progress=err.print
            )
        console = Console()
        if not console.is_terminal:  # a file or pipe: wide enough for every column
            console = Console(width=max(100, 34 + 26 * len(results)))
        console.print(compare_table(results))
        csv_path, json_path = write_outputs(results, out_dir)
        dirs = [Path(d) for c in results for d in c.out_dirs]
        report = write_compare_report(dirs, out_dir)
        err.print(f"wrote {csv_path}, {json_path}, {report}")
        err.print(f"open {report} in a browser for the comparison")


def finished_runs(paths: list[Path]) -> list[Path] | None:
    """The run folders to compare when every argument is a folder (a run's, or one holding
    runs); None when every argument is a file (configs to run). Both at once is refused."""
    folders = [p for p in paths if p.is_dir()]
    if not folders:
        return None
    if len(folders) < len(paths):
        other = next(p for p in paths if not p.is_dir())
        raise ConfigError(
            f"compare takes config files or run folders, not both: {folders[0]} is a folder, "
            f"{other} is not"
        )
    from greenfl.report.compare import expand_run_dirs

    return expand_run_dirs(folders)


def _run(cfg: RunConfig, out: Path) -> dict[str, Any]:
    """One run of the comparison, with its own report.html as ``greenfl run`` writes it:
    the comparison's report links to each."""
    from greenfl.api import run
    from greenfl.cli.run import write_report_after_run

    summary = run(cfg, out).summary
    if cfg.engine.accounting:
        write_report_after_run(cfg, out)
    return summary


def _run_and_audit(cfg: RunConfig, out: Path) -> dict[str, Any]:
    """``_run``, then the run's membership-inference audit (loss attack) into audit.json."""
    from greenfl.analysis.membership import audit_run, write_audit

    summary = _run(cfg, out)
    write_audit(out, audit_run(out, shadow=0))
    return summary
