"""``greenfl estimate centralised``: what training the same model centrally would cost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from greenfl.core.errors import ConfigError

estimate_app = typer.Typer(
    help="Footprint estimates for alternatives to a federated run.", no_args_is_help=True
)

ConfigArg = Annotated[
    Path | None,  # noqa: UP007 - typer needs Optional on 3.10
    typer.Argument(help="Config file (TOML/YAML); omit with --run to use that run's config."),
]
RunOpt = Annotated[
    Path | None,  # noqa: UP007
    typer.Option("--run", help="A federated run folder: its work, fleet and totals."),
]
WorkOpt = Annotated[
    str,
    typer.Option(
        "--work",
        help="same-work: the FLOPs of the federated run's aggregated updates; to-accuracy: "
        "really train centrally until the run's final accuracy (or stop.target_accuracy).",
    ),
]
FlopsOpt = Annotated[
    float | None,  # noqa: UP007
    typer.Option("--server-flops-per-s", help="Datacentre throughput (default 3e11, estimate)."),
]
SetOpt = Annotated[
    list[str] | None,  # noqa: UP007
    typer.Option("--set", help="Override a config key (repeatable)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@estimate_app.command("centralised")
def centralised_cmd(
    config: ConfigArg = None,
    run: RunOpt = None,
    work: WorkOpt = "same-work",
    server_flops_per_s: FlopsOpt = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Estimate training the same model on the same data in the FL server's datacentre."""
    from rich.console import Console
    from rich.table import Table

    from greenfl.analysis.centralised import (
        DEFAULT_SERVER_FLOPS_PER_S,
        estimate_centralised,
        estimate_for_run,
    )
    from greenfl.analysis.centralised_result import save_estimate
    from greenfl.config import load_config
    from greenfl.fleet.catalog import load_fleet
    from greenfl.report.centralised_view import comparison_rows
    from greenfl.report.run_data import open_run

    if work not in ("same-work", "to-accuracy"):
        raise ConfigError(f"--work must be same-work or to-accuracy, got {work!r}")
    flops_s = server_flops_per_s if server_flops_per_s is not None else DEFAULT_SERVER_FLOPS_PER_S
    summary = None
    if run is not None:
        if config is not None or set_:
            raise ConfigError("--run uses that run's own config; leave out CONFIG and --set")
        with open_run(run) as rd:
            est = estimate_for_run(Path(run), work, flops_s)  # type: ignore[arg-type]
            summary = rd.summary
        saved = save_estimate(Path(run), est)
    else:
        cfg = load_config(config, set_ or [])
        est = estimate_centralised(
            cfg,
            load_fleet(cfg.fleet.catalog),
            work=work,
            server_flops_per_s=flops_s,  # type: ignore[arg-type]
        )
        saved = None
    if as_json:
        typer.echo(json.dumps({"centralised": est.to_dict(), "federated": summary}, indent=2))
        return
    t = Table(title=f"federated vs centralised ({work})", title_justify="left")
    for col in ("what", "federated", "centralised", "fed / central"):
        t.add_column(col, justify="left" if col == "what" else "right")
    for row in comparison_rows(est, summary):
        t.add_row(*row)
    console = Console()
    console.print(t)
    for a in est.assumptions:
        console.print(f"- {a}")
    if saved is not None:
        console.print(f"wrote {saved} (the run's report shows it: greenfl report {run})")


def register(app: typer.Typer) -> None:
    app.add_typer(estimate_app, name="estimate")
