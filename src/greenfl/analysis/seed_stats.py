"""Statistics over finished runs of several configs, each run at several seeds: per-run
metrics from summary.json and the ledger, their mean and standard deviation per config, and
each config's ratio to the first one, written as compare.csv and compare.json.

Ratios are paired by seed (config_i at seed s over the first config at seed s), then
averaged, so a seed that is easy for every config does not blur the comparison. A ratio
below 1 means less than the first config (e.g. 0.2 = 5x less carbon).

Pure: it reads run folders and never runs anything (greenfl.analysis.compare_seeds runs the
seeds), so the report can aggregate the runs it shows."""

from __future__ import annotations

import csv
import json
import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greenfl.core.units import J_PER_KWH

# key, label, format of one value
METRICS: tuple[tuple[str, str, str], ...] = (
    ("final_accuracy", "final accuracy", "{:.4f}"),
    ("rounds_completed", "rounds", "{:.1f}"),
    ("rounds_to_target", "rounds to target", "{:.1f}"),
    ("sim_time_s", "simulated time (s)", "{:.4g}"),
    ("time_to_target_s", "simulated time to target (s)", "{:.4g}"),
    ("energy_kwh", "energy (kWh)", "{:.4g}"),
    ("carbon_operational_g", "operational gCO2e", "{:.4g}"),
    ("carbon_embodied_g", "embodied gCO2e", "{:.4g}"),
    ("carbon_server_g", "server gCO2e (in operational)", "{:.4g}"),
    ("carbon_total_g", "total gCO2e", "{:.4g}"),
    ("carbon_g_to_target", "gCO2e to target", "{:.4g}"),
    # who took part, and how the final model serves the clients it serves worst
    ("clients_distinct", "clients that took part", "{:.1f}"),
    ("client_acc_worst_decile", "worst-decile client accuracy", "{:.4f}"),
    # safety (n/a where the run has none): the privacy spent, the backdoor's success in the
    # last round, and the membership-inference AUC of `greenfl audit` (compare --audit)
    ("epsilon", "epsilon (DP)", "{:.3g}"),
    ("backdoor_success", "backdoor success", "{:.3f}"),
    ("membership_auc", "membership AUC (loss attack)", "{:.3f}"),
)


def run_metrics(
    summary: dict[str, Any], ledger_path: Path | None = None
) -> dict[str, float | None]:
    """One run's metrics. time_to_target_s is the end of the round that reached the target,
    read from the ledger (summary.json does not hold it)."""
    time_to_target: float | None = None
    server_g: float | None = None
    reached = summary.get("rounds_to_target")
    if ledger_path is not None and ledger_path.is_file():
        conn = sqlite3.connect(f"file:{ledger_path}?mode=ro", uri=True)
        try:
            server_g = float(
                conn.execute("SELECT COALESCE(SUM(server_carbon_g), 0) FROM rounds").fetchone()[0]
            )
            if reached is not None:
                row = conn.execute(
                    "SELECT end_s FROM rounds ORDER BY round LIMIT 1 OFFSET ?", (reached - 1,)
                ).fetchone()
                time_to_target = float(row[0]) if row else None
        finally:
            conn.close()
    privacy = summary.get("privacy") or {}
    attack = summary.get("attack") or {}
    client_acc = summary.get("client_accuracy") or {}
    # Runs written before summary.json counted distinct clients have no clients_distinct.
    took_part = summary.get("clients_distinct")
    return {
        "final_accuracy": summary["final_accuracy"],
        "rounds_completed": float(summary["rounds_completed"]),
        "rounds_to_target": None if reached is None else float(reached),
        "sim_time_s": summary["sim_time_s"],
        "time_to_target_s": time_to_target,
        "energy_kwh": summary["energy_j"]["total"] / J_PER_KWH,
        "carbon_operational_g": summary["carbon_g"]["operational"],
        "carbon_embodied_g": summary["carbon_g"]["embodied"],
        "carbon_server_g": server_g,
        "carbon_total_g": summary["carbon_g"]["total"],
        "carbon_g_to_target": summary["carbon_g_to_target"],
        "clients_distinct": None if took_part is None else float(took_part),
        "client_acc_worst_decile": client_acc.get("worst_decile"),
        "epsilon": privacy.get("epsilon"),
        "backdoor_success": attack.get("backdoor_success"),
        "membership_auc": membership_auc(ledger_path.parent) if ledger_path else None,
        # Not in METRICS (not compared); to measure the runs against a common target.
        "target_accuracy": summary.get("target_accuracy"),
        "best_accuracy": summary.get("best_accuracy"),
    }


def membership_auc(run_dir: Path) -> float | None:
    """The loss attack's AUC in the run's audit.json, or None where it was not audited."""
    path = run_dir / "audit.json"
    if not path.is_file():
        return None
    audit = json.loads(path.read_text(encoding="utf-8"))
    return float(audit["attacks"]["loss"]["auc"])


def to_accuracy(ledger_path: Path, target: float) -> tuple[float, float, float] | None:
    """(rounds, simulated end time, total carbon) up to the first round whose accuracy
    reached ``target``; None if none did."""
    conn = sqlite3.connect(f"file:{ledger_path}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT r.round, r.end_s, r.accuracy, r.server_carbon_g + COALESCE(SUM("
            "c.carbon_operational_g + c.carbon_embodied_g), 0) FROM rounds r "
            "LEFT JOIN client_rounds c ON c.round = r.round GROUP BY r.round ORDER BY r.round"
        ).fetchall()
    finally:
        conn.close()
    total = 0.0
    for n, (_, end_s, acc, g) in enumerate(rows, start=1):
        total += g or 0.0
        if acc is not None and acc >= target:
            return float(n), float(end_s), total
    return None


def align_targets(configs: Sequence[ConfigRuns]) -> float | None:
    """The accuracy the "to target" metrics are measured to, filled into each run. Runs
    that share a configured target keep it; otherwise (none set, or different ones) the
    best accuracy every run reached, so the to-target rows compare like with like instead
    of reading n/a."""
    runs = [(m, d) for c in configs for m, d in zip(c.metrics, c.out_dirs, strict=True)]
    targets = {m.get("target_accuracy") for m, _ in runs}
    if len(targets) == 1 and None not in targets:
        target = targets.pop()
    else:
        best = [m.get("best_accuracy") for m, _ in runs]
        if not runs or any(b is None for b in best):
            return None
        target = min(float(b) for b in best if b is not None)
        for m, d in runs:
            reached = to_accuracy(Path(d) / "ledger.sqlite", target)
            m["rounds_to_target"], m["time_to_target_s"], m["carbon_g_to_target"] = (
                reached if reached is not None else (None, None, None)
            )
            m["target_accuracy"] = target
    for c in configs:
        c.target = target
    return target


def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None, int]:
    """Mean and sample standard deviation of the values that exist, and how many exist."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not xs:
        return None, None, 0
    mean = sum(xs) / len(xs)
    if len(xs) == 1:
        return mean, 0.0, 1
    var = sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)
    return mean, math.sqrt(var), len(xs)


@dataclass
class ConfigRuns:
    name: str
    path: str
    seeds: list[int]
    metrics: list[dict[str, float | None]] = field(default_factory=list)  # one per seed
    out_dirs: list[str] = field(default_factory=list)
    target: float | None = None  # the accuracy of the "to target" metrics


@dataclass(frozen=True)
class Stat:
    mean: float | None
    std: float | None
    n: int
    ratio_mean: float | None  # paired by seed, against the first config
    ratio_std: float | None


def aggregate(configs: Sequence[ConfigRuns]) -> dict[str, dict[str, Stat]]:
    """{config name: {metric: Stat}}."""
    first = configs[0]
    out: dict[str, dict[str, Stat]] = {}
    for c in configs:
        stats: dict[str, Stat] = {}
        for key, _, _ in METRICS:
            vals = [m[key] for m in c.metrics]
            mean, std, n = mean_std(vals)
            base = {s: m[key] for s, m in zip(first.seeds, first.metrics, strict=True)}
            ratios = []
            for s, v in zip(c.seeds, vals, strict=True):
                b = base.get(s)
                if v is not None and b is not None and b != 0:
                    ratios.append(v / b)
            r_mean, r_std, _ = mean_std(ratios)
            stats[key] = Stat(mean, std, n, r_mean, r_std)
        out[c.name] = stats
    return out


def to_json(configs: Sequence[ConfigRuns]) -> dict[str, Any]:
    stats = aggregate(configs)
    return {
        "baseline": configs[0].name,
        "target_accuracy": configs[0].target,
        "metrics": [k for k, _, _ in METRICS],
        "configs": [
            {
                "name": c.name,
                "path": c.path,
                "seeds": c.seeds,
                "runs": [
                    {"seed": s, "out_dir": d, **m}
                    for s, d, m in zip(c.seeds, c.out_dirs, c.metrics, strict=True)
                ],
                "stats": {k: vars(v) for k, v in stats[c.name].items()},
            }
            for c in configs
        ],
    }


def write_outputs(configs: Sequence[ConfigRuns], out_dir: str | Path) -> tuple[Path, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stats = aggregate(configs)
    csv_path = out / "compare.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["config", "metric", "mean", "std", "n", "ratio_mean", "ratio_std"])
        for c in configs:
            for key, _, _ in METRICS:
                s = stats[c.name][key]
                w.writerow([c.name, key, s.mean, s.std, s.n, s.ratio_mean, s.ratio_std])
    json_path = out / "compare.json"
    json_path.write_text(json.dumps(to_json(configs), indent=2) + "\n", encoding="utf-8")
    return csv_path, json_path
