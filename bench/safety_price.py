"""Issue 17's carbon price of safety: every defence under every attack, the central-DP
accuracy-epsilon curve, and what each costs in rounds and gCO2e to target, from
`greenfl compare` (greenfl.analysis.compare_seeds.compare, the command's own code).

    python bench/safety_price.py                    # ~40 min on 2 busy cores
    python bench/safety_price.py --only dp   # one part: attacks | dir | dp | local | leakage

Runs go to bench/results/safety/ (ignored); the numbers to bench/issue17/results.json,
and the Markdown tables of BENCHMARKS.md are printed at the end (--tables re-prints them
from the JSON). The footprint is modelled from counted work, so it repeats on any host.

Settings, chosen before any run and the same for every defence:
- the scenario is the built-in quickstart (digits, 100 clients, 10 a round, 5 local epochs,
  30 rounds), IID, and Dirichlet(0.5) label skew;
- attackers are 20% of the population (10% for the backdoor); sign_flip sends -4x its
  update (four of them cancel the honest mean of the other 80%), scaling x1e6 (issue 16's
  probe), noise a N(0, 1) vector, alie Baruch et al.'s z, backdoor a 2x2 trigger on half of
  an attacker's samples, boosted x5;
- robust strategies tolerate f = ceil(fraction x clients per round) attackers (Bulyan
  needs n >= 4f + 3: it runs 15 clients a round); clip bounds updates at 0.5 with noise
  of std 0.005;
- central DP: 500 clients, 100 a round (q = 0.2), clip 0.5, noise calibrated so epsilon
  reaches 1, 2, 4 or 8 at delta = 1e-5 after the 30 rounds (RDP, Poisson sampling);
- gCO2e and rounds to target are to 85% accuracy.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import tomli_w

from greenfl.analysis.compare_seeds import compare
from greenfl.analysis.membership import audit_run, write_audit
from greenfl.analysis.seed_stats import to_accuracy
from greenfl.api import run
from greenfl.config import RunConfig, apply_override, read_config_file
from greenfl.privacy import CentralAccountant

SEEDS = (0, 1, 2)
TARGET = 0.85
OUT = Path("bench/results/safety")
RESULTS = Path("bench/issue17/results.json")
SCENARIOS = {
    "digits IID": [],
    "digits Dirichlet(0.5)": ["data.partition=dirichlet", "data.alpha=0.5"],
}
DEFENCES: dict[str, list[str]] = {
    "fedavg": [],
    "median": ["strategy.name=median"],
    "trimmed_mean": ["strategy.name=trimmed_mean", "strategy.params.trim_fraction=0.2"],
    "krum": ["strategy.name=krum"],
    "multikrum": ["strategy.name=multikrum"],
    "bulyan": ["strategy.name=bulyan", "train.clients_per_round=15"],
    "geomedian": ["strategy.name=geomedian"],
    "centered_clip": ["strategy.name=centered_clip"],
    "clip": ["strategy.name=clip", "strategy.params.norm=0.5", "strategy.params.noise_std=0.005"],
}
ATTACKS: dict[str, list[str]] = {
    "none": [],
    "sign_flip": ["attack.name=sign_flip", "attack.fraction=0.2", "attack.scale=4"],
    "scaling": ["attack.name=scaling", "attack.fraction=0.2", "attack.scale=1e6"],
    "noise": ["attack.name=noise", "attack.fraction=0.2"],
    "label_flip": ["attack.name=label_flip", "attack.fraction=0.2"],
    "alie": ["attack.name=alie", "attack.fraction=0.2"],
    "backdoor": ["attack.name=backdoor", "attack.fraction=0.1", "attack.scale=5"],
}
DIRICHLET_ATTACKS = ("none", "sign_flip", "scaling")  # the targets on skewed data
DP_BASE = [
    "data.num_clients=500",
    "train.clients_per_round=100",
    "train.batch_size=4",
    "privacy.clip_norm=0.5",
]
EPSILONS = (1.0, 2.0, 4.0, 8.0)
DELTA = 1e-5
# Membership leakage needs a model that memorises: 10 clients of ~18 samples, all in every
# round, 30 local epochs with momentum, a wide hidden layer (the audit's over-fitted case).
LEAKY = [
    "data.num_clients=10",
    "data.test_fraction=0.9",
    "train.rounds=5",
    "train.clients_per_round=10",
    "train.local_epochs=30",
    "train.momentum=0.9",
    "model.params.hidden=[256]",
]
LEAKY_SIGMAS = (0.5, 1.0, 1.5)
LOCAL_DP = {  # sample-level DP-SGD on each client: noise multipliers, reported epsilon
    "local DP-SGD sigma 1.0": ["privacy.mode=local", "privacy.noise_multiplier=1.0"],
    "local DP-SGD sigma 2.0": ["privacy.mode=local", "privacy.noise_multiplier=2.0"],
}


def base_file(folder: Path, name: str, sets: list[str]) -> Path:
    """A config file: the quickstart with ``sets`` applied, and no report."""
    qs = Path(str(resources.files("greenfl.examples").joinpath("quickstart.toml")))
    data = read_config_file(qs)
    for assignment in [*sets, "report.html=false"]:
        apply_override(data, assignment)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name.replace(' ', '_')}.toml"
    path.write_bytes(tomli_w.dumps(data).encode())
    return path


def run_and_audit(cfg: RunConfig, out: Path) -> dict[str, Any]:
    summary = run(cfg, out).summary
    write_audit(out, audit_run(out, shadow=0))
    return summary


def sigma_for(epsilon: float, rounds: int, cohort: int, population: int) -> float:
    """The noise multiplier whose epsilon after ``rounds`` rounds is ``epsilon``."""

    def eps(sigma: float) -> float:
        acct = CentralAccountant(sigma)
        for _ in range(rounds):
            acct.compose_round(cohort, population)
        return acct.epsilon(DELTA)

    lo, hi = 0.3, 60.0
    for _ in range(40):
        mid = (lo * hi) ** 0.5
        lo, hi = (mid, hi) if eps(mid) > epsilon else (lo, mid)
    return hi


def summarise(results: list[Any]) -> dict[str, dict[str, Any]]:
    """Per config: each seed's metrics, plus rounds and gCO2e to TARGET from the ledger."""
    out: dict[str, dict[str, Any]] = {}
    for c in results:
        per_seed = []
        for m, d in zip(c.metrics, c.out_dirs, strict=True):
            reached = to_accuracy(Path(d) / "ledger.sqlite", TARGET)
            per_seed.append(
                {
                    "accuracy": m["final_accuracy"],
                    "carbon_g": m["carbon_total_g"],
                    "rounds_to_target": reached[0] if reached else None,
                    "carbon_g_to_target": reached[2] if reached else None,
                    "epsilon": m["epsilon"],
                    "backdoor_success": m["backdoor_success"],
                    "membership_auc": m["membership_auc"],
                }
            )
        out[c.name] = {"path": c.path, "seeds": c.seeds, "runs": per_seed}
    return out


def part_attacks(part: str, scenario: str, attacks: tuple[str, ...], results: dict) -> None:
    sets = SCENARIOS[scenario]
    files = [base_file(OUT / "configs", n, [*sets, *s]) for n, s in DEFENCES.items()]
    for attack in attacks:
        key = f"{scenario} / {attack}"
        print(f"== {key}", file=sys.stderr, flush=True)
        res = compare(
            files, SEEDS, OUT / part / attack, ATTACKS[attack],
            run_fn=run_and_audit if attack == "none" else None,
        )  # fmt: skip
        results[key] = summarise(res)
        save(results)


def part_dp(results: dict) -> None:
    files = [base_file(OUT / "configs", "dp-none", DP_BASE)]
    for eps in EPSILONS:
        sigma = sigma_for(eps, 30, 100, 500)
        sets = [*DP_BASE, "privacy.mode=central", f"privacy.noise_multiplier={sigma:.6g}"]
        files.append(base_file(OUT / "configs", f"dp-central-eps{eps:g}", sets))
    res = compare(files, SEEDS, OUT / "dp", run_fn=run_and_audit)
    results["central DP"] = summarise(res)
    save(results)


def part_local(results: dict) -> None:
    files = [base_file(OUT / "configs", "local-none", [])]
    files += [base_file(OUT / "configs", n, s) for n, s in LOCAL_DP.items()]
    res = compare(files, SEEDS, OUT / "local", run_fn=run_and_audit)
    results["local DP"] = summarise(res)
    save(results)


def part_leakage(results: dict) -> None:
    files = [base_file(OUT / "configs", "leaky-none", LEAKY)]
    for sigma in LEAKY_SIGMAS:
        sets = [*LEAKY, "privacy.mode=local", f"privacy.noise_multiplier={sigma:g}"]
        files.append(base_file(OUT / "configs", f"leaky-local-sigma{sigma:g}", sets))
    res = compare(files, SEEDS, OUT / "leakage", run_fn=run_and_audit)
    results["leakage"] = summarise(res)
    save(results)


def save(results: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")


def _mean(values: list[float | None]) -> float | None:
    xs = [v for v in values if v is not None]
    return statistics.mean(xs) if xs else None


def _f(x: float | None, fmt: str) -> str:
    return "n/a" if x is None else format(x, fmt)


def print_tables(results: dict) -> None:
    for scenario in SCENARIOS:
        attacks = [a for a in ATTACKS if f"{scenario} / {a}" in results]
        if not attacks:
            continue
        print(f"\n### {scenario}: accuracy under attack (mean of seeds {SEEDS})\n")
        head = ["defence", *(f"acc. {a}" for a in attacks)]
        if "backdoor" in attacks:
            head.append("backdoor success")
        head += ["membership AUC", "rounds to 85%", "gCO2e to 85%", "gCO2e (whole run)"]
        print("| " + " | ".join(head) + " |")
        print("|---|" + "---:|" * (len(head) - 1))
        clean = results[f"{scenario} / none"]
        for name in clean:
            cells = [name]
            for a in attacks:
                runs = results[f"{scenario} / {a}"][name]["runs"]
                cells.append(_f(_mean([r["accuracy"] for r in runs]), ".3f"))
            if "backdoor" in attacks:
                runs = results[f"{scenario} / backdoor"][name]["runs"]
                cells.append(_f(_mean([r["backdoor_success"] for r in runs]), ".3f"))
            runs = clean[name]["runs"]
            reached = sum(r["rounds_to_target"] is not None for r in runs)
            cells += [
                _f(_mean([r["membership_auc"] for r in runs]), ".3f"),
                f"{_f(_mean([r['rounds_to_target'] for r in runs]), '.1f')} ({reached}/3)",
                _f(_mean([r["carbon_g_to_target"] for r in runs]), ".4f"),
                _f(_mean([r["carbon_g"] for r in runs]), ".4f"),
            ]
            print("| " + " | ".join(cells) + " |")
    for part in ("central DP", "local DP", "leakage"):
        if part not in results:
            continue
        print(f"\n### {part} (mean of seeds {SEEDS})\n")
        print("| config | epsilon (delta 1e-5) | accuracy | membership AUC | rounds to 85% | "
              "gCO2e to 85% | gCO2e (whole run) |")  # fmt: skip
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name, r in results[part].items():
            runs = r["runs"]
            reached = sum(x["rounds_to_target"] is not None for x in runs)
            print(
                f"| {name} | {_f(_mean([x['epsilon'] for x in runs]), '.3g')} | "
                f"{_f(_mean([x['accuracy'] for x in runs]), '.3f')} | "
                f"{_f(_mean([x['membership_auc'] for x in runs]), '.3f')} | "
                f"{_f(_mean([x['rounds_to_target'] for x in runs]), '.1f')} ({reached}/3) | "
                f"{_f(_mean([x['carbon_g_to_target'] for x in runs]), '.4f')} | "
                f"{_f(_mean([x['carbon_g'] for x in runs]), '.4f')} |"
            )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--only", choices=("attacks", "dir", "dp", "local", "leakage"), action="append"
    )
    ap.add_argument("--tables", action="store_true", help="print the tables of the JSON")
    args = ap.parse_args()
    results: dict = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    if not args.tables:
        parts = args.only or ["attacks", "dir", "dp", "local", "leakage"]
        for part in parts:  # the run folders of an earlier run of these parts
            shutil.rmtree(OUT / part, ignore_errors=True)
        if "attacks" in parts:
            part_attacks("attacks", "digits IID", tuple(ATTACKS), results)
        if "dir" in parts:
            part_attacks("dir", "digits Dirichlet(0.5)", DIRICHLET_ATTACKS, results)
        if "dp" in parts:
            part_dp(results)
        if "local" in parts:
            part_local(results)
        if "leakage" in parts:
            part_leakage(results)
    print_tables(results)


if __name__ == "__main__":
    main()
