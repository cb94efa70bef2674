"""The final summary table in the terminal."""

from __future__ import annotations

import sqlite3
from typing import Any

from rich.console import Console
from rich.table import Table

from greenfl.report.headline import format_carbon, format_energy, format_large
from greenfl.report.run_mode import is_async_run, ledger_config, step_word
from greenfl.report.staleness import staleness_histogram
from greenfl.report.submodel_view import terminal_rows
from greenfl.report.tables import breakdown, carbon_by, intelligence_per_kwh


def summary_table(
    summary: dict[str, Any], conn: sqlite3.Connection, initial_accuracy: float, stop_reason: str
) -> Table:
    b = breakdown(conn)
    # Every row of a quantity reads in the unit of its largest figure (the rule of
    # report.headline, as in the HTML report), so the rows add up at a glance.
    scale_g = max(b.total_g, summary.get("carbon_g_to_target") or 0.0)

    def fmt_j(j: float) -> str:
        return format_energy(j, b.total_j)

    def fmt_g(g: float) -> str:
        return format_carbon(g, scale_g)

    t = Table(title="greenfl run summary", show_header=False, title_justify="left")
    t.add_column("what", style="bold")
    t.add_column("value")
    acc = summary["final_accuracy"]
    asynchronous = is_async_run(ledger_config(conn), conn)
    step = step_word(asynchronous)
    t.add_row("stopped", stop_reason)
    t.add_row(f"{step}s", str(summary["rounds_completed"]))
    if asynchronous:
        t.add_row("staleness", staleness_line(conn))
    t.add_row("final / best accuracy", f"{acc:.4f} / {summary['best_accuracy']:.4f}")
    if summary["target_accuracy"] is not None:
        reached = summary["rounds_to_target"]
        t.add_row(
            "to target",
            f"{step} {reached}, {fmt_g(summary['carbon_g_to_target'])}"
            if reached
            else f"not reached ({summary['target_accuracy']})",
        )
    t.add_row("simulated time", f"{summary['sim_time_s']:.1f} s")
    t.add_row("wall time", f"{summary['wall_time_s']:.1f} s")
    total_j = b.total_j
    for label, j in (
        ("client compute", b.compute_j),
        ("communication", b.comm_j),
        ("server (x PUE)", b.server_j),
    ):
        share = j / total_j * 100 if total_j else 0.0
        t.add_row(f"energy: {label}", f"{fmt_j(j)} ({share:.1f}%)")
    t.add_row("energy: total", fmt_j(total_j))
    total_g = b.total_g
    for label, g in (
        ("clients, operational", b.client_operational_g),
        ("server, operational", b.server_g),
        ("embodied", b.embodied_g),
    ):
        share = g / total_g * 100 if total_g else 0.0
        t.add_row(f"carbon: {label}", f"{fmt_g(g)} ({share:.1f}%)")
    t.add_row("carbon: total", fmt_g(total_g))
    ipk = intelligence_per_kwh(acc, initial_accuracy, total_j)
    t.add_row("intelligence per kWh", f"{format_large(ipk)} accuracy points / kWh")
    for label, text in terminal_rows(conn, acc):  # sub-models, precision, density
        t.add_row(label, text)
    top_r = ", ".join(f"{n} {fmt_g(g)}" for n, g, _ in carbon_by(conn, "region", 3))
    top_d = ", ".join(f"{n} {fmt_g(g)}" for n, g, _ in carbon_by(conn, "device", 3))
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    t.add_row("clients that took part", f"{summary['clients_distinct']} (an update aggregated)")
    if "jain_index" in meta:
        t.add_row("fairness: Jain's index", f"{float(meta['jain_index']):.3f} (participation)")
        t.add_row(
            "least-represented region",
            f"{meta['least_region']}: {float(meta['least_region_participation']):.2f} rounds "
            f"per client, accuracy {float(meta['least_region_accuracy']):.4f} "
            f"(on {meta['least_region_accuracy_data']})",
        )
    t.add_row("top regions by carbon", top_r)
    t.add_row("top devices by carbon", top_d)
    return t


def staleness_line(conn: sqlite3.Connection) -> str:
    """An async run's staleness in one line: mean and max over the aggregated updates."""
    h = staleness_histogram(conn)
    if h is None or not h.aggregated:
        return "not recorded"
    n = h.total(aggregated_only=True)
    return (
        f"mean {h.mean(aggregated_only=True):.2f}, max {h.max(aggregated_only=True)} server "
        f"steps (over {n:,} aggregated updates)"
    )


def print_summary(console: Console, *args: Any) -> None:
    console.print(summary_table(*args))
