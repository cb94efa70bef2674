"""The report's headline numbers: each with its value, how it is shown, and (where it is one)
the summary.json key it comes from, so a test can check the page against summary.json; and
the formatters every tool shows energy, carbon, accuracy and durations with."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from greenfl.report.style import carbon_scale, energy_scale

if TYPE_CHECKING:
    from greenfl.report.run_data import RunData


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    value: float | None
    display: str
    note: str = ""
    summary_key: str | None = None  # dotted key into summary.json, when the value is one


def summary_value(summary: dict[str, Any], dotted: str) -> Any:
    node: Any = summary
    for part in dotted.split("."):
        node = node[part]
    return node


# ---- the one unit rule -----------------------------------------------------------------
# Energy reads in J, Wh or kWh and carbon in µg, mg, g or kgCO2e, whichever puts the value
# between 1 and 1000 (energy: J up to 1 Wh). Figures shown together (a table, its rows and
# columns, a terminal summary, the axis of a plot) all take the unit of the largest of them,
# so that they compare at a glance; a figure shown alone (a headline card, the live
# progress line's running total) is its own largest. Every tool formats through
# format_energy / format_carbon, with three significant figures and no exponent.


def plain_number(v: float, digits: int = 3) -> str:
    """``v`` to ``digits`` significant figures, without exponent notation and without
    trailing zeros; thousands separated from 1000 up."""
    if not math.isfinite(v):
        return "n/a"
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    decimals = digits - 1 - math.floor(math.log10(abs(v)))
    if decimals > 9:  # a value a billion times below its unit reads better as an exponent
        return f"{v:.{digits - 1}e}"
    text = f"{v:.{max(decimals, 0)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _finite_max(values: Iterable[float | None]) -> float:
    return max((abs(v) for v in values if v is not None and math.isfinite(v)), default=0.0)


def energy_unit(*values_j: float | None) -> tuple[float, str]:
    """(factor, unit) for energies shown together: the unit of the largest of them."""
    return energy_scale(_finite_max(values_j))


def carbon_unit(*values_g: float | None) -> tuple[float, str]:
    """(factor, unit) for carbon figures shown together: the unit of the largest of them."""
    return carbon_scale(_finite_max(values_g))


def format_energy(j: float | None, scale_j: float | None = None) -> str:
    """``j`` joules in the unit of ``scale_j``, the largest energy shown beside it (a
    table's, a row's); without one, ``j``'s own unit. ``"n/a"`` for a missing value."""
    if j is None or not math.isfinite(j):
        return "n/a"
    k, unit = energy_unit(j if scale_j is None else scale_j)
    return f"{plain_number(j * k)} {unit}"


def format_carbon(g: float | None, scale_g: float | None = None) -> str:
    """``g`` gCO2e in the unit of ``scale_g``, the largest carbon figure shown beside it;
    without one, ``g``'s own unit. ``"n/a"`` for a missing value."""
    if g is None or not math.isfinite(g):
        return "n/a"
    k, unit = carbon_unit(g if scale_g is None else scale_g)
    return f"{plain_number(g * k)} {unit}"


def format_large(v: float) -> str:
    if not math.isfinite(v):
        return "n/a"
    for size, word in ((1e9, "billion"), (1e6, "million"), (1e3, "thousand")):
        if abs(v) >= size:
            return f"{v / size:.3g} {word}"
    return f"{v:.3g}"


def format_accuracy(a: float | None) -> str:
    return "n/a" if a is None else f"{a * 100:.2f}%"


def format_duration(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "n/a"
    if s < 120:
        return f"{s:.3g} s"
    if s < 2 * 3600:
        return f"{s / 60:.3g} min"
    if s < 2 * 86400:
        return f"{s / 3600:.3g} h"
    return f"{s / 86400:.3g} days"


def eval_every(config: dict[str, Any]) -> int | None:
    """The run's ``eval.every`` from its stored config (plain JSON: the report does not
    load the config model); None where the config predates the key."""
    section = config.get("eval")
    value = section.get("every") if isinstance(section, dict) else None
    return int(value) if isinstance(value, int | float) else None


def _every(n: int) -> str:
    return "every round" if n == 1 else f"every {n} rounds"


def client_accuracy_note(
    client: dict[str, Any] | None, every: int | None, rounds_completed: int
) -> str:
    """What the clients' accuracy card rests on, true to the run's ``eval.every``
    (clients are evaluated in the rounds that are multiples of it; 0: never)."""
    if client:
        note = (
            f"worst decile {format_accuracy(client['worst_decile'])}, p10 "
            f"{format_accuracy(client['p10'])}; {client['clients']} clients' own test data"
        )
        if every:
            note += f"; evaluated {_every(every)}"
        if client.get("round") is not None:
            note += f", the last in round {client['round']}"
        return note
    if every == 0:
        return "not evaluated (eval.every = 0)"
    if every is None:
        return "not evaluated"
    if rounds_completed < every:
        return (
            f"not evaluated: the run ended after {rounds_completed} "
            f"round{'s' if rounds_completed != 1 else ''}, before round {every} "
            f"(eval.every = {every})"
        )
    return f"no evaluation recorded (eval.every = {every})"


def headline_metrics(run: RunData) -> list[Metric]:
    # Imported here, not above: the CLI's progress line imports the formatters at start,
    # and the tables reach the ledger package, which loads numpy (about 0.15 s).
    from greenfl.report.tables import breakdown, intelligence_per_kwh

    s = run.summary
    b = breakdown(run.conn)
    total_j = float(s["energy_j"]["total"])
    acc = s["final_accuracy"]
    ipk = (
        intelligence_per_kwh(acc, run.initial_accuracy, total_j)
        if acc is not None
        else float("nan")
    )
    target = s.get("target_accuracy")
    to_target = s.get("carbon_g_to_target")
    if target is None:
        target_note = "no target set (stop.target_accuracy)"
    elif to_target is None:
        target_note = f"target {format_accuracy(target)} not reached"
    else:
        target_note = f"reached {format_accuracy(target)} in {run.step} {s['rounds_to_target']}"
    initial = run.initial_accuracy
    client = s.get("client_accuracy")  # absent in summaries older than the key
    metrics = [
        Metric(
            "final_accuracy",
            "final accuracy",
            acc,
            format_accuracy(acc),
            f"best {format_accuracy(s['best_accuracy'])}; untrained "
            + ("n/a" if math.isnan(initial) else format_accuracy(initial)),
            "final_accuracy",
        ),
        Metric(
            "client_accuracy",
            "clients' accuracy",
            client["mean"] if client else None,
            format_accuracy(client["mean"]) if client else "n/a",
            client_accuracy_note(client, eval_every(run.config), s["rounds_completed"]),
            "client_accuracy.mean" if client else None,
        ),
        Metric(
            "energy_kwh",
            "energy",
            total_j,
            format_energy(total_j),
            "clients, network and server x PUE",
            "energy_j.total",
        ),
        Metric(
            "carbon_total",
            "carbon",
            s["carbon_g"]["total"],
            format_carbon(s["carbon_g"]["total"]),
            "operational + embodied",
            "carbon_g.total",
        ),
        Metric(
            "carbon_operational",
            "operational carbon",
            s["carbon_g"]["operational"],
            format_carbon(s["carbon_g"]["operational"]),
            f"of which server {format_carbon(b.server_g)}",
            "carbon_g.operational",
        ),
        Metric(
            "carbon_embodied",
            "embodied carbon",
            s["carbon_g"]["embodied"],
            format_carbon(s["carbon_g"]["embodied"]),
            "device manufacturing, amortised over active use",
            "carbon_g.embodied",
        ),
        Metric(
            "carbon_server",
            "server carbon",
            b.server_g,
            format_carbon(b.server_g),
            "aggregation + evaluation, x PUE (ledger rounds.server_carbon_g)",
        ),
        Metric(
            "carbon_to_target",
            "carbon to target",
            to_target,
            format_carbon(to_target),
            target_note,
            "carbon_g_to_target",
        ),
        Metric(
            "intelligence_per_kwh",
            "intelligence per kWh",
            ipk,
            f"{format_large(ipk)} pts/kWh",
            "accuracy points gained over the untrained model, per kWh",
        ),
        Metric(
            "rounds_completed",
            f"{run.step}s",
            s["rounds_completed"],
            str(s["rounds_completed"]),
            run.stop_reason or "",
            "rounds_completed",
        ),
        Metric(
            "sim_time_s",
            "simulated time",
            s["sim_time_s"],
            format_duration(s["sim_time_s"]),
            f"wall time {format_duration(s.get('wall_time_s'))}",
            "sim_time_s",
        ),
    ]
    return metrics + safety_metrics(s, run.config)


def safety_metrics(summary: dict[str, Any], config: dict[str, Any]) -> list[Metric]:
    """The privacy spent and the simulated attack, for runs that have them (summary.json's
    ``privacy`` and ``attack``, absent in summaries older than the keys)."""
    out: list[Metric] = []
    privacy = summary.get("privacy") or {}
    eps = privacy.get("epsilon")
    if eps is not None:
        mode = (config.get("privacy") or {}).get("mode", "")
        out.append(
            Metric(
                "epsilon",
                "privacy spent",
                eps,
                f"epsilon {eps:.3g}",
                f"at delta {privacy['delta']:g}, {mode} differential privacy (RDP accountant; "
                "per round in the ledger's rounds.epsilon)",
                "privacy.epsilon",
            )
        )
    attack = summary.get("attack") or {}
    if attack.get("name", "none") != "none":
        out.append(
            Metric(
                "attack",
                "simulated attack",
                attack["fraction"],
                f"{attack['name']}, {attack['fraction']:.0%}",
                "share of clients malicious (ledger meta malicious_clients)",
                "attack.fraction",
            )
        )
    success = attack.get("backdoor_success")
    if success is not None:
        out.append(
            Metric(
                "backdoor_success",
                "backdoor success",
                success,
                format_accuracy(success),
                "triggered test inputs of other classes put in the target class, last round",
                "attack.backdoor_success",
            )
        )
    return out
