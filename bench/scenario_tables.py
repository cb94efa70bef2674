"""Issue 15's scenario tables: gCO2e to target of greenfl's policy against FedAvg and the
anchor policies (Oort, FedZero-style, AutoFL-style), every one of them tuned by
``greenfl tune`` over the same grid of round parameters, paired by seed; the per-lever
breakdown of greenfl's policy; the adapt bandit alone against the tuned FedAvg; and the
sensitivity of the headline to the network figures (kWh/GB and the LTE/5G tail power,
halved and doubled).

    python bench/scenario_tables.py                      # digits: ~40 min on 2 cores
    python bench/scenario_tables.py --scenarios shakespeare femnist   # hours a policy
    python bench/scenario_tables.py --tables-only        # the tables of OUT/scenarios.json
    python bench/scenario_tables.py --adapt --adapt-seeds 0,1,2,3,4,5,6,7,8,9   # bandits only
    python bench/scenario_tables.py --world country-production-DE    # issue 28's worlds
    python bench/scenario_tables.py --world all --tables-only

With --world (issue 28; bench/worlds.py defines the worlds, the start times across the
year and the provenance): every policy is tuned in that world, over the same grid, which
includes the upload codec (identity, q8) for every policy; seed s starts at its own start
time, the same for every policy; results go to bench/results/worlds/<world>.json with the
commit, command and environment that produced them (see run_world below).

Each policy is its own settings on top of the scenario's FedAvg file, and nothing else:
the built-in fleet as it is, with diurnal availability, the real 2020 traces and the
shared server. Results go to OUT/scenarios.json (kept in git; the per-run folders under
OUT/<scenario>/ are not) and are printed as Markdown.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

import greenfl
from greenfl.config import load_config

# issue 28's worlds, defined in bench/worlds.py
WORLD_NAMES = (
    "global-any",
    "global-production",
    "country-production-DE",
    "country-production-GB",
    "country-production-FR",
)

GRID = {  # digits: the grid every policy is tuned over
    "train.clients_per_round": "3,5,10",
    "train.local_epochs": "5,20",
    "train.batch_size": "2,4",
}
SEEDS = (0, 1, 2)
# Each scenario: its FedAvg file, the grid every policy is tuned over (the same for all of
# them), FedZero's round window (above the slowest modelled client round at any grid point,
# so the window never cuts its work; partial work is how it adapts epochs) and whether the
# lever breakdown, the adapt bandit and the sensitivity are measured too. The LSTM and CNN
# scenarios cost minutes a run on 2 cores, so their grid is the base file's one point, for
# every policy alike (BENCHMARKS.md says so beside their tables).
SCENARIOS: dict[str, dict] = {
    "digits": {
        "base": "examples/reference-fedavg.toml",
        "grid": GRID,
        # slowest client round at any grid point: ~40 ms (its LTE transfers)
        "deadline_s": 0.05,
        "extras": True,
    },
    # digits again, over a grid beyond the first one's corner (its best points sit at 3
    # clients, 20 epochs, batch 2 for most policies): does a wider search change the ratios?
    "digits-wide": {
        "base": "examples/reference-fedavg.toml",
        "grid": {
            "train.clients_per_round": "1,2,3",
            "train.local_epochs": "20,50",
            "train.batch_size": "1,2",
        },
        # 50 epochs of the largest client (23 samples) on 1 GFLOP/s: 23 ms, plus 38 ms
        "deadline_s": 0.1,
        "extras": False,
    },
    "shakespeare": {
        "base": "examples/shakespeare-scenario-fedavg.toml",
        "grid": {
            "train.clients_per_round": "10",
            "train.local_epochs": "1",
            "train.batch_size": "10",
        },
        # 200 samples x 0.382 GFLOP on phone-low's little cores (1 GFLOP/s): 76 s, plus
        # 3.3 MB each way over LTE (6.4 s): 83 s
        "deadline_s": 100.0,
        "extras": False,
    },
    "femnist": {
        "base": "examples/femnist-shaped-fedavg.toml",
        "grid": {
            "train.clients_per_round": "10",
            "train.local_epochs": "1",
            "train.batch_size": "16",
        },
        # at most 300 samples x 0.102 GFLOP on 1 GFLOP/s: 31 s, plus 26 MB each way over
        # LTE (51 s): 82 s
        "deadline_s": 100.0,
        "extras": False,
    },
    # FEMNIST-shaped again over a small grid, for FedAvg, greenfl and the best anchor only (a
    # run costs minutes): is the one-point comparison above an artefact of its point?
    "femnist-grid": {
        "base": "examples/femnist-shaped-fedavg.toml",
        "grid": {
            "train.clients_per_round": "5,10",
            "train.local_epochs": "1,3",
            "train.batch_size": "16",
        },
        # 3 epochs of at most 300 samples x 0.102 GFLOP on 1 GFLOP/s: 92 s, plus 51 s of LTE
        "deadline_s": 150.0,
        "extras": False,
    },
    # Its best FedAvg point sat at that grid's corner (5 clients, 3 epochs): beyond it.
    "femnist-wide": {
        "base": "examples/femnist-shaped-fedavg.toml",
        "grid": {
            "train.clients_per_round": "3,5",
            "train.local_epochs": "3,5",
            "train.batch_size": "16",
        },
        # 5 epochs of at most 300 samples x 0.102 GFLOP on 1 GFLOP/s: 153 s, plus 51 s of LTE
        "deadline_s": 250.0,
        "extras": False,
    },
    # And beyond femnist-wide's corner (3 clients, 5 epochs), for FedAvg and greenfl.
    "femnist-wider": {
        "base": "examples/femnist-shaped-fedavg.toml",
        "grid": {
            "train.clients_per_round": "2,3",
            "train.local_epochs": "5,10",
            "train.batch_size": "16",
        },
        # 10 epochs of at most 300 samples x 0.102 GFLOP on 1 GFLOP/s: 306 s, plus 51 s
        "deadline_s": 400.0,
        "extras": False,
    },
    # Shakespeare with half the cohort, for FedAvg and greenfl: a second point where the
    # first was the only one.
    "shakespeare-5": {
        "base": "examples/shakespeare-scenario-fedavg.toml",
        "grid": {
            "train.clients_per_round": "5",
            "train.local_epochs": "1",
            "train.batch_size": "10",
        },
        "deadline_s": 100.0,
        "extras": False,
    },
}
GREENFL = [  # greenfl's policy: examples/reference-greenfl.toml's settings beyond FedAvg's
    "selection.name=carbon",
    "compression.name=q8",
    "scheduling.name=carbon",
    "scheduling.params.slack_s=3600",
    "scheduling.params.step_s=900",
    # waits at most half the rounds' time so far: time to target within 1.5x (issue 28)
    "scheduling.params.max_wait_share=0.5",
    "adapt.target=carbon",
]


def policies(deadline_s: float) -> dict[str, list[str]]:
    """Each policy's settings on top of the scenario's FedAvg file."""
    return {
        "fedavg": [],
        "oort": ["selection.name=oort"],
        "fedzero": [
            "selection.name=fedzero",
            f"fleet.deadline_s={deadline_s:g}",
            "fleet.partial_work=aggregate",
            "adapt.target=carbon",
        ],
        "autofl": ["selection.name=autofl", "adapt.target=carbon"],
        "greenfl": GREENFL,
        # The same with a participation floor (every available client once every 10
        # rounds): what fairness of participation costs.
        "greenfl + floor": [*GREENFL, "selection.fairness=floor", "selection.fairness_window=10"],
    }


LEVERS = {  # what each lever of greenfl's policy gives: the tuned policy without it
    "without carbon selection": ["selection.name=random"],
    "without q8 compression": ["compression.name=identity"],
    "without carbon scheduling": ["scheduling.name=none", "scheduling.params={}"],
    "without execution targets": ["adapt.target=entry"],
}
ADAPT = {  # the bandit alone: random selection, no compression, arms = the grid
    "adapt ucb": ["adapt.name=ucb"],
    "adapt thompson": ["adapt.name=thompson"],
    "adapt pooled": ["adapt.name=pooled"],
}


def arms(grid: dict[str, str]) -> list[str]:
    return [f"adapt.{k.split('.')[1]}=[{v}]" for k, v in grid.items()]


def tune(base: str, grid: dict[str, str], fixed: list[str], out: Path) -> dict[str, str]:
    """``greenfl tune`` over ``grid`` with ``fixed`` as one-valued axes: the best point."""
    cmd = [sys.executable, "-m", "greenfl", "tune", base, "--metric", "carbon_g_to_target"]
    for key, values in grid.items():
        cmd += ["--grid", f"{key}={values}"]
    for setting in fixed:
        cmd += ["--grid", setting]
    cmd += ["--seeds", ",".join(map(str, SEEDS)), "--set", "report.html=false", "--out", str(out)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with (out / "tune.csv").open() as fh:
        header = fh.readline().strip().split(",")
        best = fh.readline().strip().split(",")
    return {k: v for k, v in zip(header, best, strict=True) if k in grid}


def summary_of(folder: Path) -> dict:
    """A run folder's summary, with the number of distinct clients that took part."""
    summary = json.loads((folder / "summary.json").read_text())
    conn = sqlite3.connect(folder / "ledger.sqlite")
    (summary["participants"],) = conn.execute(
        "SELECT count(DISTINCT client_id) FROM client_rounds"
    ).fetchone()
    conn.close()
    return summary


def tuned_runs(out: Path, point: dict[str, str]) -> list[dict]:
    """The summaries of ``greenfl tune``'s own runs at ``point``, one per seed (the same
    config and seed as a fresh run, which repeats them exactly: no need to run them again)."""
    found = {}
    for cfg_file in sorted((out / "runs").glob("p*-seed*/config.json")):
        cfg = json.loads(cfg_file.read_text())
        if all(str(cfg[k.split(".")[0]][k.split(".")[1]]) == v for k, v in point.items()):
            found[cfg["seed"]] = summary_of(cfg_file.parent)
    return [found[seed] for seed in SEEDS]


def runs(base: str, sets: list[str], seeds: tuple[int, ...] = SEEDS) -> list[dict]:
    """The summaries of ``base`` with ``sets``, one per seed, each with the number of
    distinct clients that took part (``participants``)."""
    out = []
    for seed in seeds:
        cfg = load_config(base, [*sets, f"seed={seed}", "report.html=false"])
        with tempfile.TemporaryDirectory() as d:
            greenfl.run(cfg, d)
            out.append(summary_of(Path(d)))
    return out


def row(summaries: list[dict]) -> dict:
    reached = [s["rounds_to_target"] is not None for s in summaries]
    return {
        "reached": sum(reached),
        "total_g": [
            float("nan") if s["carbon_g_to_target"] is None else s["carbon_g_to_target"]
            for s in summaries
        ],
        "operational_g": [s["carbon_g"]["operational"] for s in summaries],
        "embodied_g": [s["carbon_g"]["embodied"] for s in summaries],
        "rounds": [s["rounds_to_target"] for s in summaries],
        "accuracy": [s["final_accuracy"] for s in summaries],
        "participants": [s["participants"] for s in summaries],
        "dropped": [s["clients_dropped"] for s in summaries],
        "client_acc_worst_decile": [
            (s.get("client_accuracy") or {}).get("worst_decile") for s in summaries
        ],
    }


def point_sets(point: dict[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in point.items()]


def scaled_catalog(folder: Path, kwh: float, tail: float) -> Path:
    """The built-in catalog with network kWh/GB times ``kwh`` and tail power times ``tail``,
    its traces beside it."""
    src = resources.files("greenfl.fleet").joinpath("catalog")
    text = src.joinpath("builtin.toml").read_text()
    text = re.sub(
        r"^network_kwh_per_gb = ([0-9.]+)",
        lambda m: f"network_kwh_per_gb = {float(m.group(1)) * kwh:g}",
        text,
        flags=re.M,
    )
    text = re.sub(
        r"^tail_power_w = ([0-9.]+)",
        lambda m: f"tail_power_w = {float(m.group(1)) * tail:g}",
        text,
        flags=re.M,
    )
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(Path(str(src.joinpath("traces"))), folder / "traces", dirs_exist_ok=True)
    path = folder / "fleet.toml"
    path.write_text(text)
    return path


def ratios(base: dict, other: dict, key: str = "total_g") -> dict:
    pairs = [b / o for b, o in zip(base[key], other[key], strict=True)]
    return {
        "mean_ratio": statistics.mean(base[key]) / statistics.mean(other[key]),
        "paired": pairs,
    }


def save(out: Path, name: str, res: dict) -> None:
    """Write scenario ``name``'s results into OUT/scenarios.json, keeping the others (read
    again now: another process may have written its scenario meanwhile)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "scenarios.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    # Levers measured on their own (--levers) stay unless this run measured its own.
    kept = {k: v for k, v in results.get(name, {}).items() if k == "levers" and k not in res}
    results[name] = {**res, **kept}
    path.write_text(json.dumps(results, indent=1) + "\n")


def measure_levers(out: Path, name: str, levers: list[str]) -> None:
    """Scenario ``name``'s tuned greenfl policy with each of ``levers`` taken out."""
    sc = SCENARIOS[name]
    with (out / name / "tune-greenfl" / "tune.csv").open() as fh:
        header = fh.readline().strip().split(",")
        first = fh.readline().strip().split(",")
    point = {k: v for k, v in zip(header, first, strict=True) if k in sc["grid"]}
    for lever in levers:
        r = row(runs(sc["base"], [*GREENFL, *point_sets(point), *LEVERS[lever]]))
        path = out / "scenarios.json"
        results = json.loads(path.read_text())
        results[name].setdefault("levers", {})[lever] = r
        path.write_text(json.dumps(results, indent=1) + "\n")
        print(json.dumps({"scenario": name, "lever": lever, **r}))


def measure_adapt(out: Path, name: str, seeds: tuple[int, ...]) -> None:
    """The adapt bandits alone against the scenario's tuned FedAvg point (read from
    OUT/scenarios.json), both over ``seeds``: under ``adapt`` for the tables' seeds, else
    under ``adapt_seeds`` with the FedAvg runs beside them."""
    sc = SCENARIOS[name]
    path = out / "scenarios.json"
    point = json.loads(path.read_text())[name]["policies"]["fedavg"]["point"]
    measured = {v: row(runs(sc["base"], [*sets, *arms(sc["grid"])], seeds)) for v, sets in
                ADAPT.items()}  # fmt: skip
    results = json.loads(path.read_text())
    if seeds == SEEDS:
        results[name]["adapt"] = measured
    else:
        fed = row(runs(sc["base"], point_sets(point), seeds))
        results[name]["adapt_seeds"] = {"seeds": list(seeds), "fedavg": fed, **measured}
    path.write_text(json.dumps(results, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("bench/results/scenarios"))
    ap.add_argument(
        "--scenarios",
        nargs="+",
        default=["digits"],
        choices=sorted(
            {
                *SCENARIOS,
                "femnist_writers",
                "femnist_writers-q8",
                "digits-union",
                "digits-small",
                "femnist_writers-short",
                "shakespeare-short",
            }
        ),
        help="with --world: digits, digits-wide, digits-union (each policy's best over "
        "both: run after them), femnist_writers or shakespeare",
    )
    ap.add_argument(
        "--policies",
        nargs="+",
        choices=[*policies(0.0), "greenfl reserved"],
        help="only these policies (default: all of them)",
    )
    ap.add_argument(
        "--tables-only", action="store_true", help="print OUT/scenarios.json's tables and stop"
    )
    ap.add_argument(
        "--levers",
        nargs="+",
        choices=list(LEVERS),
        help="only these levers of the scenario's tuned greenfl policy (its tune must be in "
        "OUT), added to OUT/scenarios.json",
    )
    ap.add_argument(
        "--adapt",
        action="store_true",
        help="only the adapt bandits against the scenario's tuned FedAvg (its row must be in "
        "OUT/scenarios.json), added to it",
    )
    ap.add_argument(
        "--adapt-seeds",
        type=lambda v: tuple(int(x) for x in v.split(",")),
        default=SEEDS,
        help="with --adapt: these seeds (comma-separated), the tuned FedAvg point run again "
        "over them",
    )
    ap.add_argument(
        "--world",
        nargs="+",
        choices=[*WORLD_NAMES, "all"],
        help="issue 28's worlds (bench/worlds.py): tune and measure every policy in each, "
        "results in bench/results/worlds/<world>.json; with --tables-only, print them",
    )
    ap.add_argument("--jobs", type=int, default=2, help="with --world: runs at once")
    ap.add_argument("--no-levers", action="store_true", help="with --world: policies only")
    ap.add_argument("--levers-only", action="store_true", help="with --world: levers only")
    ap.add_argument("--lever", nargs="+", help="with --world: only these levers")
    ap.add_argument(
        "--sensitivity",
        action="store_true",
        help="with --world: also each footprint choice (marginal network energy, embodied "
        "per share of lifetime) at every compared policy's tuned point",
    )
    ap.add_argument(
        "--lever-policy",
        nargs="+",
        choices=["greenfl", "greenfl reserved"],
        help="with --world: whose levers (default greenfl)",
    )
    args = ap.parse_args()
    if args.world:
        import world_tables

        world_tables.main(args)
        return
    saved = args.out / "scenarios.json"
    if args.adapt:
        for name in args.scenarios:
            measure_adapt(args.out, name, args.adapt_seeds)
        print_tables(json.loads(saved.read_text()))
        return
    if args.levers:
        for name in args.scenarios:
            measure_levers(args.out, name, args.levers)
        return
    # Other scenarios' results are kept; a scenario given here is measured again (a tune
    # whose OUT/<scenario>/tune-<policy>/tune.csv is there is read, not run again).
    if args.tables_only:
        print_tables(json.loads(saved.read_text()))
        return
    for name in args.scenarios:
        sc = SCENARIOS[name]
        base, grid = sc["base"], sc["grid"]
        chosen = policies(sc["deadline_s"])
        if args.policies:
            chosen = {k: v for k, v in chosen.items() if k in args.policies}
        res: dict = {"base": base, "grid": grid, "seeds": list(SEEDS), "policies": {}}
        best: dict[str, dict[str, str]] = {}
        for policy, sets in chosen.items():
            tuned = args.out / name / f"tune-{policy.replace(' + ', '-')}"
            if (tuned / "tune.csv").is_file():
                with (tuned / "tune.csv").open() as fh:
                    header = fh.readline().strip().split(",")
                    first = fh.readline().strip().split(",")
                best[policy] = {k: v for k, v in zip(header, first, strict=True) if k in grid}
            else:
                best[policy] = tune(base, grid, sets, tuned)
            summaries = row(tuned_runs(tuned, best[policy]))
            res["policies"][policy] = {"point": best[policy], "settings": sets, **summaries}
            print(json.dumps({"scenario": name, "policy": policy, **res["policies"][policy]}))
            save(args.out, name, res)
        if not sc["extras"] or not {"fedavg", "greenfl"} <= set(best):
            continue
        res["levers"] = {}
        g_sets = [*GREENFL, *point_sets(best["greenfl"])]
        for lever, change in LEVERS.items():
            res["levers"][lever] = row(runs(base, [*g_sets, *change]))
        save(args.out, name, res)
        res["adapt"] = {}
        for variant, sets in ADAPT.items():
            res["adapt"][variant] = row(runs(base, [*sets, *arms(grid)]))
        save(args.out, name, res)
        res["sensitivity"] = {}
        f_sets = point_sets(best["fedavg"])
        with tempfile.TemporaryDirectory() as d:
            for label, kwh, tail in (
                ("kWh/GB x0.5", 0.5, 1.0),
                ("kWh/GB x2", 2.0, 1.0),
                ("tail power x0.5", 1.0, 0.5),
                ("tail power x2", 1.0, 2.0),
            ):
                cat = scaled_catalog(Path(d) / label.replace(" ", "_").replace("/", ""), kwh, tail)
                fleet = [f"fleet.catalog={json.dumps(str(cat))}"]
                res["sensitivity"][label] = {
                    "fedavg": row(runs(base, [*f_sets, *fleet])),
                    "greenfl": row(runs(base, [*g_sets, *fleet])),
                }
        save(args.out, name, res)
    print_tables(json.loads(saved.read_text()))


def mean(values: list) -> float:
    """The mean, nan where a value is missing (a seed that did not reach the target)."""
    vals = [float("nan") if v is None else v for v in values]
    return statistics.mean(vals) if vals else float("nan")


def paired(base: dict, other: dict, key: str) -> str:
    return "/".join(f"{x:.2f}" for x in ratios(base, other, key)["paired"])


def print_tables(results: dict) -> None:
    for name, res in results.items():
        pol = res["policies"]
        if "fedavg" not in pol:
            print(f"\n### {name}: FedAvg not measured yet\n")
            continue
        fed = pol["fedavg"]
        grid = res["grid"]
        n = len(fed["total_g"])
        print(f"\n### {name}\n")
        print("| policy | best point (clients, epochs, batch) | reached | gCO2e to target | "
              "operational | embodied | rounds | final accuracy | clients that took part | "
              "worst-decile client accuracy | tuned FedAvg / it (paired) |")  # fmt: skip
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for policy, r in pol.items():
            point = ", ".join(r["point"][k] for k in grid)
            rounds = mean([x for x in r["rounds"] if x is not None] or [None])
            worst = [x for x in r["client_acc_worst_decile"] if x is not None]
            worst_s = f"{mean(worst):.3f}" if worst else "-"
            print(f"| {policy} | {point} | {r['reached']}/{n} | {mean(r['total_g']):.4f} | "
                  f"{mean(r['operational_g']):.4f} | {mean(r['embodied_g']):.5f} | "
                  f"{rounds:.1f} | {mean(r['accuracy']):.3f} | {mean(r['participants']):.0f} | "
                  f"{worst_s} | {ratios(fed, r)['mean_ratio']:.2f}x "
                  f"({paired(fed, r, 'total_g')}) |")  # fmt: skip
        anchors = {k: v for k, v in pol.items() if k in ("oort", "fedzero", "autofl")}
        if "greenfl" in pol:
            g = pol["greenfl"]
            best_anchor = (
                min(anchors, key=lambda k: mean(anchors[k]["total_g"])) if anchors else None
            )
            for label, key in (("total", "total_g"), ("operational", "operational_g"),
                               ("embodied", "embodied_g")):  # fmt: skip
                line = (f"\n{label}: greenfl vs tuned FedAvg "
                        f"{ratios(fed, g, key)['mean_ratio']:.2f}x (paired "
                        f"{paired(fed, g, key)})")  # fmt: skip
                if best_anchor:
                    a = anchors[best_anchor]
                    line += (f", vs best anchor ({best_anchor}) "
                             f"{ratios(a, g, key)['mean_ratio']:.2f}x (paired "
                             f"{paired(a, g, key)})")  # fmt: skip
                print(line)
        if res.get("levers"):
            g = pol["greenfl"]
            print("\n| greenfl's tuned policy | reached | gCO2e to target | its cost / greenfl's "
                  "(paired) |")  # fmt: skip
            print("|---|---:|---:|---|")
            for lever, r in res["levers"].items():
                print(
                    f"| {lever} | {r['reached']}/{n} | {mean(r['total_g']):.4f} | "
                    f"{ratios(r, g)['mean_ratio']:.2f}x ({paired(r, g, 'total_g')}) |"
                )
        if res.get("adapt"):
            print("\n| adapt bandit alone | reached | gCO2e to target | rounds | it / tuned "
                  "FedAvg (paired) |")  # fmt: skip
            print("|---|---:|---:|---:|---|")
            for variant, r in res["adapt"].items():
                rounds = mean([x for x in r["rounds"] if x is not None] or [None])
                print(f"| {variant} | {r['reached']}/{n} | {mean(r['total_g']):.4f} | "
                      f"{rounds:.1f} | {ratios(r, fed)['mean_ratio']:.2f}x "
                      f"({paired(r, fed, 'total_g')}) |")  # fmt: skip
        if res.get("adapt_seeds"):
            more = res["adapt_seeds"]
            f2 = more["fedavg"]
            seeds = more["seeds"]
            print(f"\nOver seeds {seeds[0]}-{seeds[-1]}, the tuned FedAvg point run again: "
                  f"{mean(f2['total_g']):.4f} g to target.\n")  # fmt: skip
            print("| adapt bandit alone | reached | gCO2e to target | it / tuned FedAvg |")
            print("|---|---:|---:|---|")
            for variant, r in more.items():
                if variant in ("seeds", "fedavg"):
                    continue
                print(f"| {variant} | {r['reached']}/{len(seeds)} | {mean(r['total_g']):.4f} | "
                      f"{ratios(r, f2)['mean_ratio']:.2f}x |")  # fmt: skip
        if res.get("sensitivity"):
            g = pol["greenfl"]
            print("\n| network figures | tuned FedAvg g | greenfl g | ratio (paired) |")
            print("|---|---:|---:|---|")
            print(
                f"| as shipped | {mean(fed['total_g']):.4f} | {mean(g['total_g']):.4f} | "
                f"{ratios(fed, g)['mean_ratio']:.2f}x ({paired(fed, g, 'total_g')}) |"
            )
            for label, sv in res["sensitivity"].items():
                f2, g2 = sv["fedavg"], sv["greenfl"]
                print(
                    f"| {label} | {mean(f2['total_g']):.4f} | {mean(g2['total_g']):.4f} | "
                    f"{ratios(f2, g2)['mean_ratio']:.2f}x ({paired(f2, g2, 'total_g')}) |"
                )


if __name__ == "__main__":
    main()
