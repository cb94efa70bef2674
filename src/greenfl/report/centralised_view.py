"""The centralised estimate beside a federated run: in the terminal and as a report section."""

from __future__ import annotations

import math
from html import escape
from typing import Any

from greenfl.analysis.centralised_result import CentralisedEstimate, load_estimate
from greenfl.report.headline import format_carbon, format_duration, format_energy
from greenfl.report.run_data import RunData


def comparison_rows(
    est: CentralisedEstimate, summary: dict[str, Any] | None
) -> list[tuple[str, str, str, str]]:
    """(what, federated, centralised, federated / centralised)."""
    fl_j = None if summary is None else float(summary["energy_j"]["total"])
    fl_g = None if summary is None else float(summary["carbon_g"]["total"])

    def ratio(a: float | None, b: float) -> str:
        return "n/a" if a is None or b == 0 else f"{a / b:.3g}x"

    # One unit per quantity in the table: that of its largest figure.
    j = max(est.energy_j, fl_j or 0.0, est.server_energy_j, est.upload_energy_j)
    g = max(est.carbon_g, fl_g or 0.0, est.server_carbon_g, est.upload_operational_g)

    def energy(v: float | None) -> str:
        return "n/a" if v is None else format_energy(v, j)

    def carbon(v: float | None) -> str:
        return "n/a" if v is None else format_carbon(v, g)

    return [
        ("training work", "-", f"{est.work_flops:.4g} FLOP ({est.epochs:.3g} epochs)", ""),
        ("server training time", "-", format_duration(est.train_s), ""),
        ("raw data uploaded once", "-", f"{est.data_bytes / 1e6:.4g} MB", ""),
        ("energy: server (x PUE)", "-", energy(est.server_energy_j), ""),
        ("energy: data upload", "-", energy(est.upload_energy_j), ""),
        ("energy: total", energy(fl_j), energy(est.energy_j), ratio(fl_j, est.energy_j)),
        (
            "carbon: server",
            "-",
            f"{carbon(est.server_carbon_g)} at {est.server_ci_g_per_kwh:.4g} g/kWh",
            "",
        ),
        (
            "carbon: data upload",
            "-",
            f"{carbon(est.upload_operational_g)} + {carbon(est.upload_embodied_g)} embodied",
            "",
        ),
        ("carbon: total", carbon(fl_g), carbon(est.carbon_g), ratio(fl_g, est.carbon_g)),
    ]


def centralised_section(run: RunData) -> tuple[str, str, str] | None:
    """Report section from the estimate saved beside the run (``greenfl run`` writes one;
    ``greenfl estimate centralised --run DIR`` writes another kind). The report never
    computes it: it reads the ledger and analysis files only."""
    est = load_estimate(run.path)
    if est is None:
        return (
            "centralised",
            "Federated vs centralised",
            "<p>No estimate saved beside this run: "
            f"<code>greenfl estimate centralised --run {escape(str(run.path))}</code> "
            "writes one.</p>",
        )
    rows = comparison_rows(est, run.summary)
    body_rows = "".join(
        f"<tr><td>{escape(a)}</td><td class='num'>{escape(b)}</td>"
        f"<td class='num'>{escape(c)}</td><td class='num'>{escape(d)}</td></tr>"
        for a, b, c, d in rows
    )
    fl_g = float(run.summary["carbon_g"]["total"])
    ratio = fl_g / est.carbon_g if est.carbon_g else math.nan
    verdict = (
        f"This federated run emitted <strong data-metric='fl_over_centralised' "
        f"data-value='{ratio!r}'>{ratio:.3g}x</strong> the carbon of training centrally "
        + ("(FL costs more)." if ratio > 1 else "(FL costs less).")
    )
    assumptions = "".join(f"<li>{escape(a)}</li>" for a in est.assumptions)
    body = (
        f"<p class='lead'>{verdict} Qiu et al. (JMLR 2023) found FL can emit up to two orders "
        "of magnitude more than centralised training, and about as much in some settings.</p>"
        "<table><thead><tr><th>what</th><th class='num'>federated (this run)</th>"
        "<th class='num'>centralised estimate</th><th class='num'>federated / centralised</th>"
        f"</tr></thead><tbody>{body_rows}</tbody></table>"
        f"<details><summary>Assumptions ({escape(est.work)})</summary><ul>{assumptions}</ul>"
        "</details>"
    )
    return ("centralised", "Federated vs centralised", body)
