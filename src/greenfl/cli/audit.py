"""``greenfl audit``: membership-inference attacks on a finished run's final model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

RunArg = Annotated[Path, typer.Argument(help="Run folder of a finished run.")]
ShadowOpt = Annotated[
    int,
    typer.Option(
        "--shadow", help="LiRA shadow models, trained centrally (0: the loss attack only)."
    ),
]
EpochsOpt = Annotated[
    int,
    typer.Option(
        "--shadow-epochs",
        help="At most this many epochs per shadow model (default: the passes the run made "
        "over a member's data, capped here).",
    ),
]
SamplesOpt = Annotated[
    int, typer.Option("--max-samples", help="Members audited at most (as many non-members).")
]
SeedOpt = Annotated[
    int | None,  # noqa: UP007 - typer needs Optional on 3.10
    typer.Option("--seed", help="Seed of the subsample and shadow models (default: the run's)."),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="No line per shadow model.")]


def register(app: typer.Typer) -> None:
    @app.command("audit")
    def audit_cmd(
        run: RunArg,
        shadow: ShadowOpt = 4,
        shadow_epochs: EpochsOpt = 30,
        max_samples: SamplesOpt = 2000,
        seed: SeedOpt = None,
        quiet: QuietOpt = False,
    ) -> None:
        """Membership-inference audit: loss-threshold and LiRA attacks, into audit.json."""
        from greenfl.analysis.membership import audit_run, write_audit
        from greenfl.report.audit_view import read_summary, table_lines

        def progress(line: str) -> None:
            typer.echo(line, err=True)

        result = audit_run(
            run,
            shadow=shadow,
            shadow_epochs=shadow_epochs,
            max_samples=max_samples,
            seed=seed,
            progress=None if quiet else progress,
        )
        path = write_audit(run, result)
        for line in table_lines(result, read_summary(run)):
            typer.echo(line)
        typer.echo(f"wrote {path}")
