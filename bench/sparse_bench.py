"""Sparse training on digits (issue 31, item 3): the reference FedAvg scenario
(examples/reference-fedavg.toml: 200 clients, 10 a round, MLP 64-[64]-10) dense, with
magnitude pruning of 50% and 80% of the prunable weights, and of 50% of the hidden units
(``structured``), on Zhu & Gupta's schedule (pruned every 5 rounds from round 1 to
``--end``, then fixed), each for ``--rounds`` rounds with no accuracy stop, seeds 0-2.
Every run uses the sequential trainer, so dense and sparse differ only by the mask.

Per run: the final and best test accuracy, the round that first reached ``--target``, the
bytes a round moved (up and down, all its clients) in the last round and over the run,
the client compute energy (counted FLOPs: the dense model's under an unstructured mask,
whose kernels are dense; lower with whole units pruned), the client communication energy
and the run's gCO2e.

    python bench/sparse_bench.py [--seeds 0 1 2] [--rounds 200] [--end 100] [--target 0.8]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time

import greenfl
from greenfl.config import load_config

CONFIG = "examples/reference-fedavg.toml"
# (sparsity target, structured); 0.0: dense
SETTINGS: tuple[tuple[float, bool], ...] = ((0.0, False), (0.5, False), (0.8, False), (0.5, True))


def run(
    seed: int, target: float, structured: bool, rounds: int, end: int, goal: float
) -> dict[str, float | None]:
    sets = [f"seed={seed}", f"train.rounds={rounds}", "stop.target_accuracy=null",
            "report.html=false", "engine.trainer='sequential'"]  # fmt: skip
    if target > 0:
        sets += ["sparsity.name='magnitude'", f"sparsity.target={target}",
                 f"sparsity.end_round={end}", "sparsity.every_rounds=5",
                 f"sparsity.structured={str(structured).lower()}"]  # fmt: skip
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        result = greenfl.run(load_config(CONFIG, sets), out)
        conn = sqlite3.connect(f"{out}/ledger.sqlite")
        per_round = conn.execute(
            "SELECT round, SUM(bytes_up), SUM(bytes_down), MIN(density), SUM(energy_compute_j), "
            "SUM(energy_comm_j) FROM client_rounds GROUP BY round ORDER BY round"
        ).fetchall()
        conn.close()
    accs = [r.accuracy for r in result.history]
    last = per_round[-1]
    return {
        "accuracy_final": accs[-1],
        "accuracy_best": max(accs),
        "rounds_to_target": next((i + 1 for i, a in enumerate(accs) if a >= goal), None),
        "density_final": last[3],
        "bytes_up_last_round": last[1],
        "bytes_down_last_round": last[2],
        "mb_up_total": sum(r[1] for r in per_round) / 1e6,
        "mb_down_total": sum(r[2] for r in per_round) / 1e6,
        "client_compute_j": sum(r[4] for r in per_round),
        "client_comm_j": sum(r[5] for r in per_round),
        "carbon_g": result.summary["carbon_g"]["total"],
        "wall_s": time.perf_counter() - t0,
    }


def mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--end", type=int, default=100, help="sparsity.end_round")
    ap.add_argument("--target", type=float, default=0.8, help="accuracy for rounds-to-target")
    args = ap.parse_args()
    results: dict[tuple[float, bool], list[dict[str, float | None]]] = {s: [] for s in SETTINGS}
    for seed in args.seeds:
        for target, structured in SETTINGS:
            r = run(seed, target, structured, args.rounds, args.end, args.target)
            results[(target, structured)].append(r)
            line = {"seed": seed, "sparsity": target, "structured": structured, **r}
            print(json.dumps(line), flush=True)
    dense = results[(0.0, False)]
    print(
        f"\n| sparsity | density | final accuracy | best accuracy | rounds to {args.target} "
        "| bytes up / round (last) | bytes down / round (last) | MB up+down (run) "
        "| vs dense | client compute J | client comm J | gCO2e (run) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    total_dense = statistics.mean(r["mb_up_total"] + r["mb_down_total"] for r in dense)
    for (target, structured), rows in results.items():
        reached = [r["rounds_to_target"] for r in rows if r["rounds_to_target"] is not None]
        to_target = "-"
        if reached:
            to_target = f"{statistics.mean(reached):.0f} ({len(reached)}/{len(rows)})"
        total = statistics.mean(r["mb_up_total"] + r["mb_down_total"] for r in rows)
        print(
            f"| {target:.1f}{' units' if structured else ''} | {rows[0]['density_final']:.3f} "
            f"| {mean_sd([r['accuracy_final'] for r in rows])} "
            f"| {mean_sd([r['accuracy_best'] for r in rows])} | {to_target} "
            f"| {statistics.mean(r['bytes_up_last_round'] for r in rows):,.0f} "
            f"| {statistics.mean(r['bytes_down_last_round'] for r in rows):,.0f} "
            f"| {total:.2f} | {total / total_dense:.2f}x "
            f"| {statistics.mean(r['client_compute_j'] for r in rows):.4g} "
            f"| {statistics.mean(r['client_comm_j'] for r in rows):.4g} "
            f"| {statistics.mean(r['carbon_g'] for r in rows):.4g} |"
        )


if __name__ == "__main__":
    main()
