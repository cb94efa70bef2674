"""Issue 15's scenario table: gCO2e to target of greenfl's policy against FedAvg and the
anchor policies (Oort, FedZero-style, AutoFL-style), every one of them tuned by
``greenfl tune`` over the same grid of round parameters, paired by seed; the per-lever
breakdown of greenfl's policy; the adapt bandit alone against the tuned FedAvg; and the
sensitivity of the headline to the network figures (kWh/GB and the LTE/5G tail power,
halved and doubled).

    python bench/scenario_tables.py --out bench/results/scenarios   # ~40 min on 2 cores

Each policy is its own settings on top of the scenario's FedAvg file, and nothing else:
the built-in fleet as it is, with diurnal availability, the real 2020 traces and the
shared server. Results go to OUT/scenarios.json and are printed as Markdown.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

import greenfl
from greenfl.config import load_config

GRID = {
    "train.clients_per_round": "3,5,10",
    "train.local_epochs": "5,20",
    "train.batch_size": "2,4",
}
SEEDS = (0, 1, 2)
SCENARIOS = {"digits": "examples/reference-fedavg.toml"}
GREENFL = [  # greenfl's policy: examples/reference-greenfl.toml's settings beyond FedAvg's
    "selection.name=carbon",
    "selection.fairness=floor",
    "selection.fairness_window=10",
    "compression.name=q8",
    "scheduling.name=carbon",
    "scheduling.slack_s=3600",
    "scheduling.step_s=900",
    "adapt.target=carbon",
]
# FedZero's round window: above the slowest modelled client round at any grid point (40 ms
# on this fleet), so the window never cuts its work; partial work is how it adapts epochs.
POLICIES: dict[str, list[str]] = {
    "fedavg": [],
    "oort": ["selection.name=oort"],
    "fedzero": [
        "selection.name=fedzero",
        "fleet.deadline_s=0.05",
        "fleet.partial_work=aggregate",
        "adapt.target=carbon",
    ],
    "autofl": ["selection.name=autofl", "adapt.target=carbon"],
    "greenfl": GREENFL,
}
LEVERS = {  # what each lever of greenfl's policy gives: the tuned policy without it
    "without carbon selection": ["selection.name=random"],
    "without q8 compression": ["compression.name=identity"],
    "without carbon scheduling": ["scheduling.name=none"],
    "without execution targets": ["adapt.target=entry"],
}
ADAPT = {  # the bandit alone: random selection, no compression, arms = the grid
    "adapt ucb": ["adapt.name=ucb"],
    "adapt thompson": ["adapt.name=thompson"],
}
ARMS = [f"adapt.{k.split('.')[1]}=[{v}]" for k, v in GRID.items()]


def tune(base: str, fixed: list[str], out: Path) -> dict[str, str]:
    """``greenfl tune`` over GRID with ``fixed`` as one-valued axes: the best point."""
    cmd = [sys.executable, "-m", "greenfl", "tune", base, "--metric", "carbon_g_to_target"]
    for key, values in GRID.items():
        cmd += ["--grid", f"{key}={values}"]
    for setting in fixed:
        cmd += ["--grid", setting]
    cmd += ["--seeds", ",".join(map(str, SEEDS)), "--out", str(out)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with (out / "tune.csv").open() as fh:
        header = fh.readline().strip().split(",")
        best = fh.readline().strip().split(",")
    return {k: v for k, v in zip(header, best, strict=True) if k in GRID}


def runs(base: str, sets: list[str]) -> list[dict]:
    """The summaries of ``base`` with ``sets``, one per seed."""
    out = []
    for seed in SEEDS:
        cfg = load_config(base, [*sets, f"seed={seed}", "report.html=false"])
        with tempfile.TemporaryDirectory() as d:
            greenfl.run(cfg, d)
            out.append(json.loads(Path(d, "summary.json").read_text()))
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("bench/results/scenarios"))
    ap.add_argument("--scenarios", nargs="+", default=list(SCENARIOS))
    args = ap.parse_args()
    results: dict = {}
    for name in args.scenarios:
        base = SCENARIOS[name]
        res: dict = {"base": base, "grid": GRID, "policies": {}, "levers": {}, "adapt": {}}
        best: dict[str, dict[str, str]] = {}
        for policy, sets in POLICIES.items():
            best[policy] = tune(base, sets, args.out / name / f"tune-{policy}")
            summaries = row(runs(base, [*sets, *point_sets(best[policy])]))
            res["policies"][policy] = {"point": best[policy], **summaries}
            print(json.dumps({"scenario": name, "policy": policy, **res["policies"][policy]}))
        g_sets = [*GREENFL, *point_sets(best["greenfl"])]
        for lever, change in LEVERS.items():
            res["levers"][lever] = row(runs(base, [*g_sets, *change]))
        for variant, sets in ADAPT.items():
            res["adapt"][variant] = row(runs(base, [*sets, *ARMS]))
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
        results[name] = res
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "scenarios.json").write_text(json.dumps(results, indent=1) + "\n")
    print_tables(results)


def mean(values: list[float]) -> float:
    return statistics.mean(values)


def print_tables(results: dict) -> None:
    for name, res in results.items():
        pol = res["policies"]
        fed = pol["fedavg"]
        print(f"\n### {name}\n")
        print("| policy | best point (clients, epochs, batch) | reached | gCO2e to target | "
              "operational | embodied | rounds | FedAvg / it (paired) |")  # fmt: skip
        print("|---|---|---:|---:|---:|---:|---:|---|")
        for policy, r in pol.items():
            p = r["point"]
            point = ", ".join(p[k] for k in GRID)
            rr = ratios(fed, r)
            pairs = "/".join(f"{x:.2f}" for x in rr["paired"])
            rounds = mean([x for x in r["rounds"] if x is not None] or [float("nan")])
            print(f"| {policy} | {point} | {r['reached']}/3 | {mean(r['total_g']):.4f} | "
                  f"{mean(r['operational_g']):.4f} | {mean(r['embodied_g']):.5f} | "
                  f"{rounds:.1f} | {rr['mean_ratio']:.2f}x ({pairs}) |")  # fmt: skip
        g = pol["greenfl"]
        anchors = {k: v for k, v in pol.items() if k not in ("fedavg", "greenfl")}
        best_anchor = min(anchors, key=lambda k: mean(anchors[k]["total_g"]))
        for label, key in (("total", "total_g"), ("operational", "operational_g"),
                           ("embodied", "embodied_g")):  # fmt: skip
            print(f"\n{label}: greenfl vs tuned FedAvg {ratios(fed, g, key)['mean_ratio']:.2f}x, "
                  f"vs best anchor ({best_anchor}) "
                  f"{ratios(anchors[best_anchor], g, key)['mean_ratio']:.2f}x")  # fmt: skip
        print("\n| greenfl's tuned policy | gCO2e to target | its cost / greenfl's |")
        print("|---|---:|---:|")
        for lever, r in res["levers"].items():
            print(f"| {lever} | {mean(r['total_g']):.4f} | "
                  f"{mean(r['total_g']) / mean(g['total_g']):.2f}x |")  # fmt: skip
        print("\n| adapt bandit alone | reached | gCO2e to target | it / tuned FedAvg |")
        print("|---|---:|---:|---:|")
        for variant, r in res["adapt"].items():
            print(f"| {variant} | {r['reached']}/3 | {mean(r['total_g']):.4f} | "
                  f"{mean(r['total_g']) / mean(fed['total_g']):.2f}x |")  # fmt: skip
        print("\n| network figures | tuned FedAvg g | greenfl g | ratio |")
        print("|---|---:|---:|---:|")
        print(f"| as shipped | {mean(fed['total_g']):.4f} | {mean(g['total_g']):.4f} | "
              f"{ratios(fed, g)['mean_ratio']:.2f}x |")  # fmt: skip
        for label, s in res["sensitivity"].items():
            print(f"| {label} | {mean(s['fedavg']['total_g']):.4f} | "
                  f"{mean(s['greenfl']['total_g']):.4f} | "
                  f"{ratios(s['fedavg'], s['greenfl'])['mean_ratio']:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
