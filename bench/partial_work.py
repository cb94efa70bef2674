"""FedProx's straggler experiment on greenfl (Li et al., MLSys 2020, section 5.2): Synthetic
(1,1), 30 clients, 10 per round, 20 local epochs, on the built-in fleet, with a deadline
that about 90% of the clients cannot meet with the full work. ``drop`` wastes the
stragglers' work (FedAvg); ``aggregate`` takes the steps they finished (FedProx's partial
solutions, mu = 0). Accuracy after 30 rounds and gCO2e to the target, seeds 0-2.

The deadline is each seed's 10th percentile of the clients' modelled full-work durations
(the cost model's estimates, before any training): it is derived, not tuned to either mode.

    python bench/partial_work.py [--seeds 0 1 2] [--target 0.5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile

import numpy as np

import greenfl
from greenfl.config import load_config
from greenfl.factories import build_loop

CONFIG = "examples/synthetic-stragglers.toml"


def deadline_for(seed: int, share_late: float) -> float:
    """The deadline that the given share of the population cannot meet with full work."""
    cfg = load_config(CONFIG, [f"seed={seed}", "fleet.deadline_s=null", "report.html=false"])
    loop = build_loop(cfg)
    clients = np.arange(loop.population.size)
    est, _ = loop.parts.costs.estimate(clients, 0.0, cfg.train.local_epochs)
    loop.ledger.close()
    return float(np.quantile(est.duration_s, 1.0 - share_late))


def run(
    seed: int, mode: str, deadline_s: float, target: float, rounds: int
) -> dict[str, float | None]:
    sets = [f"seed={seed}", f"fleet.deadline_s={deadline_s!r}", f"fleet.partial_work={mode}",
            f"train.rounds={rounds}", "stop.target_accuracy=null", "report.html=false"]  # fmt: skip
    with tempfile.TemporaryDirectory() as out:
        result = greenfl.run(load_config(CONFIG, sets), out)
        ledger = greenfl.read_ledger(f"{out}/ledger.sqlite")
        statuses = [r["status"] for r in ledger.client_rounds]
    cum, to_target = 0.0, None
    for rec in result.history:
        cum += rec.carbon_g
        if to_target is None and rec.accuracy >= target:
            to_target = cum
    late = sum(s != "completed" for s in statuses) / max(len(statuses), 1)
    return {
        "accuracy_30": result.history[min(30, rounds) - 1].accuracy,
        "accuracy_last": result.history[-1].accuracy,
        "rounds_to_target": next((r.round for r in result.history if r.accuracy >= target), None),
        "carbon_g": result.summary["carbon_g"]["total"],
        "carbon_g_to_target": to_target,
        "not_full_share": late,
        "partial": statuses.count("partial"),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--target", type=float, default=0.5)
    ap.add_argument("--rounds", type=int, default=100, help="rounds run (accuracy at 30 too)")
    ap.add_argument("--late", type=float, default=0.9, help="share of clients past the deadline")
    args = ap.parse_args()
    results: dict[str, list[dict[str, float | None]]] = {"drop": [], "aggregate": []}
    for seed in args.seeds:
        deadline_s = deadline_for(seed, args.late)
        for mode in results:
            r = run(seed, mode, deadline_s, args.target, args.rounds)
            results[mode].append(r)
            line = {"seed": seed, "mode": mode, "deadline_s": deadline_s, **r}
            print(json.dumps(line), flush=True)
    for mode, rows in results.items():
        acc = statistics.mean(r["accuracy_30"] for r in rows)  # type: ignore[misc]
        last = statistics.mean(r["accuracy_last"] for r in rows)  # type: ignore[misc]
        reached = [r["carbon_g_to_target"] for r in rows if r["carbon_g_to_target"] is not None]
        g = "never"
        if reached:
            g = f"{statistics.mean(reached):.4g} g ({len(reached)}/{len(rows)} seeds)"
        print(f"{mode}: accuracy after 30 rounds {acc:.3f}, after {args.rounds} {last:.3f}; "
              f"gCO2e to {args.target}: {g}")  # fmt: skip


if __name__ == "__main__":
    main()
