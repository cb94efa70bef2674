"""``greenfl tune BASE.toml --grid KEY=V1,V2 ... [--seeds 0,1,2] [--metric M] --out DIR``:
grid-search a baseline over seeds; write DIR/tune.csv (every point, best first) and
DIR/best.toml (the base config at the best point), and print the ranking."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from greenfl.cli.compare import SetOpt, parse_seeds
from greenfl.core.errors import ConfigError

GridOpt = Annotated[
    list[str],
    typer.Option("--grid", help="An axis of the grid: --grid train.local_epochs=1,5 (repeat)."),
]
MetricOpt = Annotated[
    str,
    typer.Option("--metric", help="What to minimise (final_accuracy: maximise)."),
]
OutOpt = Annotated[Path, typer.Option("--out", help="Output folder: tune.csv, best.toml, runs/.")]
SeedsOpt = Annotated[str, typer.Option("--seeds", help="Comma-separated seeds, e.g. 0,1,2.")]


def register(app: typer.Typer) -> None:
    @app.command("tune")
    def tune_cmd(
        base: Annotated[Path, typer.Argument(help="The baseline's config file.")],
        grid: GridOpt,
        out: OutOpt,
        seeds: SeedsOpt = "0,1,2",
        metric: MetricOpt = "carbon_g_to_target",
        set_: SetOpt = None,
    ) -> None:
        """Find the best configuration of a baseline over a grid and seeds."""
        from greenfl.analysis.tune import tune

        seed_list = parse_seeds(seeds) or []
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out {out}: exists and is not a folder")
        from rich.console import Console
        from rich.table import Table

        err = Console(stderr=True, soft_wrap=True)
        points = tune(base, grid, seed_list, metric, out, set_ or [], on_progress=err.print)
        table = Table(title=f"greenfl tune: {metric}, seeds {seeds}", title_justify="left")
        for col in ("rank", "point", "mean", "std", "reached"):
            table.add_column(col)
        for rank, p in enumerate(points, start=1):
            fmt = lambda v: "n/a" if v is None else f"{v:.4g}"  # noqa: E731
            table.add_row(
                str(rank), p.label(), fmt(p.mean), fmt(p.std), f"{p.reached}/{len(seed_list)}"
            )
        Console().print(table)
        if points[0].reached == 0:
            err.print(f"warning: no point reached a {metric} value at any seed")
        err.print(f"wrote {out / 'tune.csv'} and {out / 'best.toml'}")
        err.print(f"compare against it: greenfl compare {out / 'best.toml'} YOUR.toml")
