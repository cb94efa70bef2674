"""``greenfl fleet show|validate|record``: the device catalog, checking a user's fleet file,
and recording a live carbon provider's signal as trace files for replay."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from greenfl.core.errors import FleetError

if TYPE_CHECKING:  # imported when a command runs: --help stays instant
    from rich.console import RenderableType

    from greenfl.fleet.catalog import Fleet


def fleet_tables(fleet: Fleet) -> list[RenderableType]:
    from rich.table import Table

    from greenfl.accounting.sources import GridChoice, source_kind

    dev = Table(title=f"devices ({fleet.path})", title_justify="left")
    for col in (
        "name",
        "GFLOP/s",
        "active W",
        "nJ/FLOP",
        "embodied kg",
        "life y",
        "active share",
        "targets",
    ):
        dev.add_column(col)
    for d in fleet.devices:
        dev.add_row(
            d.name,
            f"{d.flops_per_s / 1e9:.3g}",
            f"{d.active_power_w:.3g}",
            f"{d.active_power_w / d.flops_per_s * 1e9:.3g}",
            f"{d.embodied_kg:.3g}",
            f"{d.lifetime_years:.3g}",
            f"{d.active_share:.3g}",
            ", ".join(t.name for t in d.targets) or "-",
        )
    net = Table(title="networks", title_justify="left")
    for col in ("name", "up Mbit/s", "down Mbit/s", "radio W", "kWh/GB"):
        net.add_column(col)
    for n in fleet.networks:
        net.add_row(
            n.name,
            f"{n.up_mbps:.3g}",
            f"{n.down_mbps:.3g}",
            f"{n.radio_power_w:.3g}",
            f"{n.network_kwh_per_gb:.3g}",
        )
    reg = Table(title="regions", title_justify="left")
    for col in ("name", "label", "gCO2e/kWh", "UTC offset", "curve (ci_mode auto)"):
        reg.add_column(col)
    for r in fleet.regions:
        kind = source_kind(r, GridChoice())  # ci_mode "auto", as a run has by default
        reg.add_row(r.name, r.label, f"{r.ci_g_per_kwh:.4g}", f"{r.utc_offset_h:+g}", kind)
    pop = Table(title="population", title_justify="left")
    for col in ("device", "target", "network", "region", "share"):
        pop.add_column(col)
    total = sum(p.share for p in fleet.population)
    for p in fleet.population:
        pop.add_row(p.device, p.target or "-", p.network, p.region, f"{p.share / total:.1%}")
    s = fleet.server
    srv = Table(title="server", title_justify="left", show_header=False)
    srv.add_row("power", f"{s.power_w:g} W (idle {s.idle_power_w:g} W)")
    srv.add_row("throughput", f"{s.flops_per_s:.3g} FLOP/s")
    srv.add_row("mode", s.mode)
    srv.add_row("PUE", f"{s.pue:g}")
    srv.add_row("region", s.region)
    srv.add_row("source", s.source)
    return [dev, *precision_views(fleet), net, reg, pop, srv]


def precision_views(fleet: Fleet) -> list[RenderableType]:
    """The mixed precisions each device declares (``train.precision``): a table of one row
    per device, execution target and precision (its rates, its energy per FLOP against the
    target's fp32, whether its figures are sourced or estimated), then each one's source;
    nothing when no device declares one."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="precisions (fp32: each target's own figures)", title_justify="left")
    for col in ("device", "target", "precision", "GFLOP/s", "active W", "nJ/FLOP"):
        table.add_column(col)
    table.add_column("energy vs fp32")
    table.add_column("figures")
    sources = Text()
    for d in fleet.devices:
        for t in d.targets or (d.target(None),):
            fp32_j_per_flop = t.active_power_w / t.flops_per_s
            where = f"{d.name} {t.name}" if d.targets else d.name
            for p in t.precisions:
                j_per_flop = p.active_power_w / p.flops_per_s
                figures = "estimated" if p.estimated else "sourced"
                table.add_row(
                    d.name,
                    t.name if d.targets else "-",
                    p.name,
                    f"{p.flops_per_s / 1e9:.3g}",
                    f"{p.active_power_w:.3g}",
                    f"{j_per_flop * 1e9:.3g}",
                    # how many times less energy a FLOP takes than in fp32 (a figure of
                    # 0 W, which the fleet file admits, has no ratio)
                    f"{fp32_j_per_flop / j_per_flop:.3g}x less" if j_per_flop > 0 else "-",
                    figures,
                )
                sources.append(f"{where}, {p.name} ({figures}): {p.source or '-'}\n")
    if not table.rows:
        return []
    sources.rstrip()
    return [table, sources]


def record_command(source: str, regions: str, start: str, hours: float, out: Path) -> None:
    """``greenfl fleet record``: bad input or a provider that cannot answer exits 2 with
    one line."""
    from datetime import datetime, timezone

    from greenfl.grid.live import record_trace, write_trace
    from greenfl.grid.providers import SOURCES, GridSourceError

    def fail(message: str) -> typer.Exit:
        typer.echo(f"error: {message}", err=True)
        return typer.Exit(2)

    if source not in SOURCES:
        raise fail(f"--source {source!r}: one of {', '.join(SOURCES)}")
    names = [r.strip() for r in regions.split(",") if r.strip()]
    if not names:
        raise fail("--regions: name at least one region, e.g. DE,GB")
    try:
        t0 = datetime.fromisoformat(start.replace("Z", "+00:00"))
    except ValueError:
        raise fail(f"--start {start!r}: not an ISO 8601 time") from None
    t0 = t0 if t0.tzinfo else t0.replace(tzinfo=timezone.utc)
    if not 0 < hours <= 24 * 366:
        raise fail(f"--hours {hours:g}: must be in (0, 8784]")
    try:
        curves = record_trace(source, names, t0, hours)
    except GridSourceError as exc:
        raise fail(str(exc)) from None
    for name, points in curves.items():
        path = out if len(curves) == 1 else out.with_name(f"{out.stem}-{name}{out.suffix}")
        try:
            write_trace(path, points)
        except OSError as exc:
            raise fail(f"--out {path}: cannot write: {exc.strerror or exc}") from None
        typer.echo(f"{name}: {len(points)} points -> {path}")


def register(app: typer.Typer) -> None:
    fleet_app = typer.Typer(help="Inspect and validate fleet files.", no_args_is_help=True)
    app.add_typer(fleet_app, name="fleet")

    @fleet_app.command("show")
    def show(
        file: Annotated[
            Path | None, typer.Argument(help="Fleet file; omit for the built-in.")
        ] = None,  # noqa: UP007
    ) -> None:
        """Print a fleet catalog."""
        from rich.console import Console

        from greenfl.fleet.catalog import BUILTIN, load_fleet

        console = Console()
        for table in fleet_tables(load_fleet(file or BUILTIN)):
            console.print(table)

    @fleet_app.command("validate")
    def validate(file: Annotated[Path, typer.Argument(help="Fleet file to check.")]) -> None:
        """Check a fleet file: one line per problem; exit 2 if there is any."""
        from greenfl.fleet.catalog import load_fleet

        try:
            fleet = load_fleet(file)
        except FleetError as exc:
            for problem in exc.problems:
                typer.echo(f"error: {problem}", err=True)
            raise typer.Exit(2) from None
        typer.echo(
            f"ok: {file}: {len(fleet.devices)} devices, {len(fleet.networks)} networks, "
            f"{len(fleet.regions)} regions, {len(fleet.population)} population entries"
        )

    @fleet_app.command("record")
    def record(
        source: Annotated[
            str, typer.Option(help="electricitymaps, watttime or uk_eso (keys from env).")
        ],
        regions: Annotated[str, typer.Option(help="Fleet regions, comma-separated: DE,GB.")],
        start: Annotated[str, typer.Option(help="Window start, ISO 8601 (UTC if no offset).")],
        hours: Annotated[float, typer.Option(help="Window length in hours.")],
        out: Annotated[
            Path, typer.Option(help="Trace CSV; with several regions, FILE-REGION.csv each.")
        ],
    ) -> None:
        """Save a provider's signal for regions and a window as trace files (the fleet
        file's ``trace = ...`` format), so a later run replays what a live run saw."""
        record_command(source, regions, start, hours, out)
