"""Issue 30's time and carbon tables: asynchronous FL (FedBuff, FedAsync) against the
synchronous tuned FedAvg, in issue 28's production worlds (bench/worlds.py), seeds 0-2,
each seed at its own start time across the year, the same for every policy (pairs stay
paired).

    python bench/async_tables.py                         # digits, DE and global: ~20 min
    python bench/async_tables.py --world country-production-DE
    python bench/async_tables.py --scenario shakespeare-short   # minutes a run (not measured)
    python bench/async_tables.py --tables                # print the saved tables

Policies, each on top of the scenario's FedAvg file and the world's definition:

sync FedAvg     the tuned FedAvg of bench/results/worlds/<world>.json (its best point over
                clients_per_round, local_epochs, batch_size and codec, ranked there by
                gCO2e to target; over_selection 0.3 and dropout 0.08 as the world says, no
                round deadline: the world tables' FedAvg has none), run again here at that
                point so both sides are measured by the same code.
FedBuff         engine.mode = "async", strategy fedbuff (server_lr 1, polynomial staleness
                a = 0.5: the defaults), the same local work per update as the sync side
                (its local_epochs, batch_size, lr and codec), over GRID below. Async refuses
                fleet.over_selection (there is no cohort to over-select: a free slot is
                simply filled again), so the async runs set it to 0; dropout stays 0.08.
                The best point: RANK_RULE, the same rule the worlds' tuning uses (most seeds
                reaching the target first), with time, async's claim, as the tie-break.
FedBuff carbon-aware   the best FedBuff point with async.carbon_aware = true, its other
                carbon settings at their defaults (slack 3600 s, tolerance 0.05, 25% of
                concurrency always in flight).
FedAsync        one point for reference: strategy fedasync (alpha 0.6, polynomial a = 0.5),
                buffer 1, at the best FedBuff point's concurrency.

Time to target is the simulated time at the end of the round (sync) or server step (async)
that first reached the target (runs stop there); gCO2e to target is summary.json's
carbon_g_to_target (clients' operational + embodied + the server's).
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

OUT = worlds.ROOT / "bench" / "results" / "async"
WORLDS_DIR = worlds.ROOT / "bench" / "results" / "worlds"
SEEDS = (0, 1, 2)
WORLD_NAMES = ("country-production-DE", "global-production")
# The scenarios' FedAvg files and fixed settings (as bench/world_tables.py's WORLD_SCENARIOS)
SCENARIOS: dict[str, dict] = {
    "digits": {"base": "examples/reference-fedavg.toml", "sets": []},
    "shakespeare-short": {
        "base": "examples/shakespeare-scenario-fedavg.toml",
        "sets": ["train.rounds=10", "stop.target_accuracy=0.17"],
    },
}
GRID = {"async.concurrency": (10, 30, 100), "async.buffer_size": (5, 10)}
RANK_RULE = (
    "most seeds reaching the target, then the lowest mean simulated time to target over "
    "the seeds that reached it"
)
# The local work per update taken from the sync side's tuned point (clients_per_round has
# no meaning in async: concurrency and buffer_size take its place)
LOCAL_WORK = ("train.local_epochs", "train.batch_size", "compression.name")
ASYNC = ["engine.mode=async", "fleet.over_selection=0"]
TARGETS = {
    "time_ratio_max": 0.5,  # FedBuff / sync FedAvg, simulated time to target
    "carbon_ratio_max": 1.2,  # FedBuff / sync FedAvg, gCO2e to target
    "carbon_aware_less_min": 1.5,  # plain FedBuff / carbon-aware, gCO2e to target
    "carbon_aware_time_max": 1.5,  # carbon-aware / plain FedBuff, simulated time
}


def sync_point(world: str, scenario: str) -> dict[str, str]:
    """The tuned FedAvg's point in ``world`` (bench/results/worlds/<world>.json)."""
    path = WORLDS_DIR / f"{world}.json"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run bench/scenario_tables.py --world {world}")
    scenarios = json.loads(path.read_text())["scenarios"]
    if scenario not in scenarios or "fedavg" not in scenarios[scenario].get("policies", {}):
        raise SystemExit(
            f"{path} has no tuned FedAvg for {scenario}: run bench/scenario_tables.py "
            f"--world {world} --scenarios {scenario} --policies fedavg"
        )
    return dict(scenarios[scenario]["policies"]["fedavg"]["point"])


def run_one(base: str, sets: list[str], seed: int) -> dict:
    """One run at ``seed``'s start time: its summary, wall time and staleness figures."""
    cfg = load_config(base, [*sets, *worlds.seed_sets(seed)])
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        summary = greenfl.run(cfg, d).summary
        wall_s = time.perf_counter() - t0
        conn = sqlite3.connect(Path(d) / "ledger.sqlite")
        (participants,) = conn.execute(
            "SELECT count(DISTINCT client_id) FROM client_rounds"
        ).fetchone()
        stale = conn.execute(
            "SELECT avg(staleness), max(staleness) FROM client_rounds WHERE staleness IS NOT NULL"
        ).fetchone()
        conn.close()
    reached = summary["rounds_to_target"] is not None
    return {
        "seed": seed,
        "reached": reached,
        # the run stops at the target: its simulated time is the time to target
        "sim_time_to_target_s": summary["sim_time_s"] if reached else math.nan,
        "total_g": summary["carbon_g_to_target"] if reached else math.nan,
        "operational_g": summary["carbon_g"]["operational"],
        "embodied_g": summary["carbon_g"]["embodied"],
        "steps": summary["rounds_to_target"],
        "updates": summary["clients_selected"],
        "dropped": summary["clients_dropped"],
        "participants": participants,
        "accuracy": summary["final_accuracy"],
        "staleness_mean": stale[0],
        "staleness_max": stale[1],
        "wall_s": wall_s,
    }


def measure(base: str, sets: list[str], label: str) -> dict:
    per_seed = []
    for seed in SEEDS:
        r = run_one(base, sets, seed)
        per_seed.append(r)
        print(f"  {label} seed {seed}: reached={r['reached']} t={r['sim_time_to_target_s']:.0f}s "
              f"g={r['total_g']:.4f} steps={r['steps']} updates={r['updates']} "
              f"wall={r['wall_s']:.1f}s", flush=True)  # fmt: skip
    return {"sets": sets, "per_seed": per_seed, "reached": sum(r["reached"] for r in per_seed)}


def values(row: dict, key: str) -> list[float]:
    return [r[key] for r in row["per_seed"]]


def mean(xs: list[float]) -> float:
    """The mean over the values present (nan: a seed that did not reach the target)."""
    vals = [x for x in xs if x is not None and x == x]
    return statistics.mean(vals) if vals else math.nan


def rank_key(row: dict) -> tuple[int, float]:
    t = mean(values(row, "sim_time_to_target_s"))
    return (-row["reached"], t if t == t else math.inf)


def ratio(a: dict, b: dict, key: str) -> dict:
    """a / b: of the means, and per seed (paired)."""
    return {
        "of_means": mean(values(a, key)) / mean(values(b, key)),
        "paired": [x / y for x, y in zip(values(a, key), values(b, key), strict=True)],
    }


def load(world: str, scenario: str) -> dict:
    path = OUT / f"{world}.json"
    res = json.loads(path.read_text()) if path.is_file() else {}
    return res.get("scenarios", {}).get(scenario, {})


def save(world: str, scenario: str, block: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{world}.json"
    res = json.loads(path.read_text()) if path.is_file() else {}
    res["world"] = world
    res["definition"] = {"sets": worlds.WORLDS[world], "doc": "bench/worlds.py, never tuned"}
    res["start_rule"] = worlds.START_RULE
    res["start_times"] = {str(s): worlds.start_iso(s) for s in SEEDS}
    res.setdefault("scenarios", {})[scenario] = block
    path.write_text(json.dumps(res, indent=1) + "\n")


def run_world(world: str, scenario: str) -> None:
    sc = SCENARIOS[scenario]
    base = sc["base"]
    point = sync_point(world, scenario)
    common = [*worlds.WORLDS[world], *sc["sets"]]
    local = [f"{k}={point[k]}" for k in LOCAL_WORK]
    block = load(world, scenario)
    block.update({
        "base": base, "seeds": list(SEEDS), "sync_point": point,
        "sync_point_from": f"bench/results/worlds/{world}.json scenarios.{scenario}.policies"
                           ".fedavg.point",
        "grid": {k: list(v) for k, v in GRID.items()}, "rank_rule": RANK_RULE,
        "targets": TARGETS,
    })  # fmt: skip
    pols: dict = block.setdefault("policies", {})
    block["provenance"] = worlds.provenance()

    def get(label: str, sets: list[str]) -> dict:
        if label in pols and pols[label]["sets"] == sets:
            return pols[label]  # measured before with the same settings: kept
        print(f"[{world} {scenario}] {label}", flush=True)
        pols[label] = {**measure(base, sets, label), "commit": block["provenance"]["commit"]}
        save(world, scenario, block)
        return pols[label]

    sync = get("sync FedAvg (tuned)", [*common, *(f"{k}={v}" for k, v in point.items())])
    fedbuff = {}
    for c in GRID["async.concurrency"]:
        for k in GRID["async.buffer_size"]:
            label = f"FedBuff c={c} K={k}"
            sets = [*common, *ASYNC, "strategy.name=fedbuff", *local,
                    f"async.concurrency={c}", f"async.buffer_size={k}"]  # fmt: skip
            fedbuff[label] = get(label, sets)
    best = min(fedbuff, key=lambda lab: rank_key(fedbuff[lab]))
    block["fedbuff_best"] = best
    best_sets = pols[best]["sets"]
    aware = get("FedBuff carbon-aware", [*best_sets, "async.carbon_aware=true"])
    conc = next(s for s in best_sets if s.startswith("async.concurrency="))
    fedasync = get("FedAsync", [*common, *ASYNC, "strategy.name=fedasync", *local, conc,
                                "async.buffer_size=1"])  # fmt: skip
    b = pols[best]
    block["ratios"] = {
        "fedbuff_vs_sync": {"time": ratio(b, sync, "sim_time_to_target_s"),
                            "carbon": ratio(b, sync, "total_g")},
        "carbon_aware_vs_fedbuff": {"time": ratio(aware, b, "sim_time_to_target_s"),
                                    "carbon_less": ratio(b, aware, "total_g")},
        "fedasync_vs_sync": {"time": ratio(fedasync, sync, "sim_time_to_target_s"),
                             "carbon": ratio(fedasync, sync, "total_g")},
    }  # fmt: skip
    save(world, scenario, block)


# --- tables ------------------------------------------------------------------------------


def fmt_pairs(xs: list[float]) -> str:
    return "/".join(f"{x:.2f}" for x in xs)


def verdict(value: float, limit: float, at_most: bool) -> str:
    ok = value <= limit if at_most else value >= limit
    return f"{'met' if ok else 'missed'} ({'<=' if at_most else '>='} {limit:g})"


def print_tables(world: str) -> None:
    path = OUT / f"{world}.json"
    if not path.is_file():
        print(f"\n{world}: not measured ({path} missing)")
        return
    res = json.loads(path.read_text())
    for scenario, block in res["scenarios"].items():
        pols = block["policies"]
        sync = pols.get("sync FedAvg (tuned)")
        if sync is None:
            continue
        pt = block["sync_point"]
        commits = sorted({p["commit"][:10] for p in pols.values()})
        print(f"\n#### {world}: {scenario}\n")
        print(f"Sync point (clients, epochs, batch, codec): {pt['train.clients_per_round']}, "
              f"{pt['train.local_epochs']}, {pt['train.batch_size']}, "
              f"{pt['compression.name']}; over_selection 0.3 (sync only: async refuses it). "
              f"Commit {', '.join(commits)}. Best FedBuff by {block['rank_rule']}.\n")  # fmt: skip
        print("| policy | reached | sim. time to target (s), mean (per seed) | gCO2e to "
              "target, mean (per seed) | steps | updates | mean staleness | time / sync "
              "| gCO2e / sync |")  # fmt: skip
        print("|---|---:|---|---|---:|---:|---:|---:|---:|")
        for label, r in pols.items():
            t, g = values(r, "sim_time_to_target_s"), values(r, "total_g")
            stale = mean(values(r, "staleness_mean"))
            star = " (best)" if label == block.get("fedbuff_best") else ""
            print(f"| {label}{star} | {r['reached']}/{len(t)} | {mean(t):.0f} "
                  f"({'/'.join(f'{x:.0f}' for x in t)}) | {mean(g):.4f} "
                  f"({'/'.join(f'{x:.4f}' for x in g)}) | {mean(values(r, 'steps')):.1f} | "
                  f"{mean(values(r, 'updates')):.0f} | "
                  f"{'-' if stale != stale else f'{stale:.2f}'} | "
                  f"{mean(t) / mean(values(sync, 'sim_time_to_target_s')):.2f} | "
                  f"{mean(g) / mean(values(sync, 'total_g')):.2f} |")  # fmt: skip
        rt = block.get("ratios")
        if not rt:
            continue
        fs, ca = rt["fedbuff_vs_sync"], rt["carbon_aware_vs_fedbuff"]
        print("\n| target | measured (of the means) | per seed | verdict |")
        print("|---|---:|---|---|")
        rows = [
            ("FedBuff time / sync FedAvg", fs["time"], TARGETS["time_ratio_max"], True),
            ("FedBuff gCO2e / sync FedAvg", fs["carbon"], TARGETS["carbon_ratio_max"], True),
            ("plain FedBuff gCO2e / carbon-aware", ca["carbon_less"],
             TARGETS["carbon_aware_less_min"], False),
            ("carbon-aware time / plain FedBuff", ca["time"],
             TARGETS["carbon_aware_time_max"], True),
        ]  # fmt: skip
        for name, r, limit, at_most in rows:
            print(
                f"| {name} | {r['of_means']:.2f} | {fmt_pairs(r['paired'])} | "
                f"{verdict(r['of_means'], limit, at_most)} |"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--world", nargs="+", choices=WORLD_NAMES, default=list(WORLD_NAMES))
    ap.add_argument("--scenario", choices=list(SCENARIOS), default="digits")
    ap.add_argument("--tables", action="store_true", help="print the saved tables and stop")
    args = ap.parse_args()
    if not args.tables:
        for world in args.world:
            run_world(world, args.scenario)
    for world in args.world:
        print_tables(world)


if __name__ == "__main__":
    main()
