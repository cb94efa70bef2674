"""Issue 31's sub-model tables: width-scaled sub-models (HeteroFL) against the full-width
run of the same policy, in issue 28's country-production-DE world (bench/worlds.py), seeds
0-2, each seed at its own start time across the year, the same for every arm (pairs stay
paired). Every run stops at the scenario's target, so its totals are totals to target.

    python bench/cifar_fixture.py /tmp/greenfl-bench-data/cifar-fixture   # CIFAR's data
    python bench/submodel_tables.py                        # both scenarios, every arm
    python bench/submodel_tables.py --scenario cifar --arms full capability
    python bench/submodel_tables.py --tables               # print the saved tables

Scenarios (their FedAvg files say how their target and round cap were set, before any
sub-model run, the same for every arm):

femnist    femnist_writers (100 generated writers, one client each) with LEAF's FEMNIST CNN
           (examples/worlds/femnist-writers-fedavg.toml): target 0.25 within 20 rounds.
cifar      CIFAR-10-shaped generated data in torchvision's format (bench/cifar_fixture.py),
           Dirichlet(0.5) over 50 clients, McMahan et al.'s CIFAR CNN
           (examples/worlds/cifar-fixture-fedavg.toml): target 0.6 within 30 rounds.

Arms, each on top of the scenario's file and the world's definition; the policy is the
file's own (FedAvg, random selection) in every arm, and the full-width model is never
shrunk:

full        every client trains the full model (submodel.name = none);
capability  HeteroFL, widths 1, 0.5, 0.25: each client the widest width whose modelled
            round fits the cohort's median full-width time (no round deadline is set);
carbon      HeteroFL, widths 1, 0.5, 0.25: the cleanest half of each cohort (estimated
            full-width gCO2e) keeps full width, the others train their lowest-gCO2e width.

Client compute energy and gCO2e are the ledger's (client_rounds.energy_compute_j) and
summary.json's carbon_g_to_target (clients' operational + embodied + the server's).
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import worlds  # noqa: E402

import greenfl  # noqa: E402
from greenfl.config import load_config  # noqa: E402

OUT = worlds.ROOT / "bench" / "results" / "submodel"
WORLD = "country-production-DE"
SEEDS = (0, 1, 2)
SCENARIOS: dict[str, str] = {
    "cifar": "examples/worlds/cifar-fixture-fedavg.toml",
    "femnist": "examples/worlds/femnist-writers-fedavg.toml",
}
WIDTHS = "[1.0, 0.5, 0.25]"
ARMS: dict[str, list[str]] = {
    "full": [],
    "capability": [
        'submodel.name="heterofl"',
        f"submodel.widths={WIDTHS}",
        'submodel.choice="capability"',
    ],
    "carbon": [
        'submodel.name="heterofl"',
        f"submodel.widths={WIDTHS}",
        'submodel.choice="carbon"',
        "submodel.full_share=0.5",
    ],
}
TARGETS = {
    "compute_energy_less_min": 2.0,  # full / sub-model, client compute energy to target
    "accuracy_points_within": 1.0,  # sub-model's final accuracy at most 1 point below
    "carbon_less_min": 1.3,  # full / sub-model, total gCO2e to target
}


def run_one(base: str, sets: list[str], seed: int) -> dict:
    cfg = load_config(
        str(worlds.ROOT / base),
        [*worlds.WORLDS[WORLD], *sets, *worlds.seed_sets(seed)],
    )
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        summary = greenfl.run(cfg, d).summary
        wall_s = time.perf_counter() - t0
        conn = sqlite3.connect(Path(d) / "ledger.sqlite")
        compute_j, bytes_up, bytes_down, flops, width_mean = conn.execute(
            "SELECT sum(energy_compute_j), sum(bytes_up), sum(bytes_down), sum(flops), "
            "sum(coalesce(width, 1.0) * num_samples) / sum(num_samples) FROM client_rounds"
        ).fetchone()
        by_width = {
            str(w): {"client_rounds": n, "compute_j": j}
            for w, n, j in conn.execute(
                "SELECT coalesce(width, 1.0), count(*), sum(energy_compute_j) FROM "
                "client_rounds GROUP BY 1 ORDER BY 1 DESC"
            )
        }
        conn.close()
    reached = summary["rounds_to_target"] is not None
    return {
        "seed": seed,
        "reached": reached,
        "rounds": summary["rounds_completed"],
        "accuracy": summary["final_accuracy"],
        "compute_j": compute_j,
        "comm_j": summary["energy_j"]["client_comm"],
        "total_g": summary["carbon_g_to_target"] if reached else math.nan,
        "carbon_g": summary["carbon_g"]["total"],
        "bytes_up": bytes_up,
        "bytes_down": bytes_down,
        "flops": flops,
        "width_mean": width_mean,
        "by_width": by_width,
        "sim_time_s": summary["sim_time_s"],
        "wall_s": wall_s,
    }


def path_of(scenario: str) -> Path:
    return OUT / f"{scenario}.json"


def load(scenario: str) -> dict:
    p = path_of(scenario)
    return json.loads(p.read_text()) if p.is_file() else {}


def save(scenario: str, block: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    path_of(scenario).write_text(json.dumps(block, indent=1, sort_keys=True) + "\n")


def run_scenario(scenario: str, arms: list[str]) -> None:
    block = load(scenario)
    block.update({
        "base": SCENARIOS[scenario], "world": WORLD, "seeds": list(SEEDS),
        "targets": TARGETS, "arms_sets": {a: ARMS[a] for a in ARMS},
        "start_times": {str(s): worlds.start_iso(s) for s in SEEDS},
        "provenance": worlds.provenance(),
    })  # fmt: skip
    runs: dict = block.setdefault("runs", {})
    # seed-major, so that every finished seed is a complete pair
    for seed in SEEDS:
        for arm in arms:
            key = f"{arm}/{seed}"
            if key in runs and runs[key].get("sets") == ARMS[arm]:
                continue  # measured before with the same settings: kept
            print(f"[{scenario}] {arm} seed {seed}", flush=True)
            r = run_one(SCENARIOS[scenario], ARMS[arm], seed)
            runs[key] = {**r, "sets": ARMS[arm], "commit": block["provenance"]["commit"]}
            save(scenario, block)
            print(
                f"  reached={r['reached']} rounds={r['rounds']} acc={r['accuracy']:.4f} "
                f"compute={r['compute_j']:.1f} J total={r['total_g']:.3f} g "
                f"wall={r['wall_s']:.0f} s",
                flush=True,
            )


def _fmt(xs: list[float]) -> str:
    return "/".join(f"{x:.2f}" for x in xs)


def print_tables(scenario: str) -> None:
    block = load(scenario)
    runs = block.get("runs", {})
    if not runs:
        print(f"{scenario}: nothing measured yet")
        return
    print(f"\n### {scenario} ({block['base']}, {block['world']})\n")
    print(
        "| arm | reached | rounds | final accuracy | client compute J | client comm kJ "
        "| gCO2e to target | mean width |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for arm in ARMS:
        rs = [runs[f"{arm}/{s}"] for s in SEEDS if f"{arm}/{s}" in runs]
        if not rs:
            continue
        accs = [r["accuracy"] for r in rs]
        print(
            f"| {arm} | {sum(r['reached'] for r in rs)}/{len(rs)} "
            f"| {_fmt([r['rounds'] for r in rs]).replace('.00', '')} "
            f"| {statistics.fmean(accs):.3f} ({_fmt(accs)}) "
            f"| {statistics.fmean(r['compute_j'] for r in rs):.0f} "
            f"| {statistics.fmean(r['comm_j'] for r in rs) / 1e3:.1f} "
            f"| {_fmt([r['total_g'] for r in rs])} "
            f"| {statistics.fmean(r['width_mean'] for r in rs):.2f} |"
        )
    print()
    for arm in ARMS:
        if arm == "full":
            continue
        pairs = [
            (runs[f"full/{s}"], runs[f"{arm}/{s}"])
            for s in SEEDS
            if f"full/{s}" in runs and f"{arm}/{s}" in runs
        ]
        if not pairs:
            continue
        energy = [f["compute_j"] / a["compute_j"] for f, a in pairs]
        carbon = [f["total_g"] / a["total_g"] for f, a in pairs]
        acc = [100 * (a["accuracy"] - f["accuracy"]) for f, a in pairs]
        gm = math.exp(statistics.fmean(math.log(x) for x in energy))
        finite = [x for x in carbon if math.isfinite(x)]
        gc = math.exp(statistics.fmean(math.log(x) for x in finite)) if finite else math.nan
        print(
            f"- {arm} vs full ({len(pairs)} seeds): client compute energy {gm:.2f}x less "
            f"(per seed {_fmt(energy)}; target >= {TARGETS['compute_energy_less_min']}x), "
            f"gCO2e to target {gc:.2f}x less (per seed {_fmt(carbon)}; target >= "
            f"{TARGETS['carbon_less_min']}x), final accuracy {_fmt(acc)} points"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", choices=list(SCENARIOS), nargs="+", default=list(SCENARIOS))
    ap.add_argument("--arms", choices=list(ARMS), nargs="+", default=list(ARMS))
    ap.add_argument("--tables", action="store_true", help="print the saved tables only")
    args = ap.parse_args()
    for scenario in args.scenario:
        if not args.tables:
            run_scenario(scenario, args.arms)
        print_tables(scenario)


if __name__ == "__main__":
    main()
