"""Issue 31 item 2: mixed precision as an execution target, fp32 against bf16 (and the
built-in fleet's ``auto``), seeds 0-2, short runs (a couple of minutes in all on 2 cores).

    python bench/precision_bench.py                  # every arm, prints the table
    python bench/precision_bench.py --rounds 20      # longer digits runs

Arms, each a pair of runs of one config at one seed that differ only in train.precision
(random selection and the "always" availability pick the same clients in both, so every
ratio is over the same client rounds):

digits/phone-high   examples/reference-fedavg.toml (digits MLP, 10 clients a round) on a
                    fleet of the built-in catalog's one bf16 device class, phone-high (its
                    population entries only): every client trains in bf16. The "where a
                    device class supports it" figure.
digits/builtin      the same file on the whole built-in catalog with train.precision = auto:
                    each device its least-energy declared precision (bf16 or fp16 on the
                    classes that declare one, fp32 on rpi4, laptop, desktop, phone-low).
femnist/phone-high  femnist_writers (20 writers, 4 a round), the 45k-parameter "cnn" model
                    (LEAF's 6.6M-parameter CNN runs bf16 ~15x slower than fp32 on a CPU
                    without bf16 instructions, too slow for a short bench), bf16.

Per arm: client compute energy per round (client_rounds.energy_compute_j summed over the
run's rounds, divided by them) in fp32 and in the arm's precision, its ratio, and the test
accuracy after the last round in each, mean +- sd over the seeds, and the paired delta.
The energy is the footprint model's: the same counted FLOPs at the precision's declared
throughput and power (the catalog's figures, estimates flagged there); the accuracy is
real training under torch.autocast.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import greenfl

ROOT = Path(__file__).resolve().parent.parent
SEEDS = (0, 1, 2)
# mutated by --rounds
ARMS: dict[str, dict[str, object]] = {
    "digits/phone-high": {
        "config": "examples/reference-fedavg.toml",
        "fleet": "phone-high",
        "precision": "bf16",
        "sets": {"train.rounds": 100, "fleet.availability": "always", "stop.target_accuracy": None},
    },
    "digits/builtin": {
        "config": "examples/reference-fedavg.toml",
        "fleet": "builtin",
        "precision": "auto",
        "sets": {"train.rounds": 100, "fleet.availability": "always", "stop.target_accuracy": None},
    },
    "femnist/phone-high": {
        "config": "examples/worlds/femnist-writers-fedavg.toml",
        "fleet": "phone-high",
        "precision": "bf16",
        "sets": {
            "data.num_clients": 20,
            "model.name": "cnn",
            "train.rounds": 4,
            "train.clients_per_round": 4,
            "fleet.availability": "always",
            "stop.target_accuracy": None,
            "eval.clients": 10,
        },
    },
}


def class_fleet(device: str, folder: Path) -> Path:
    """The built-in catalog with only ``device``'s population entries (its traces beside
    it, as the catalog's own are)."""
    text = resources.files("greenfl.fleet").joinpath("catalog", "builtin.toml").read_text()
    head, *entries = re.split(r"(?m)^\[\[population\]\]\n", text)
    kept = [e for e in entries if re.search(rf'(?m)^device = "{re.escape(device)}"$', e)]
    if not kept:
        raise SystemExit(f"no population entry of device {device!r} in the built-in catalog")
    # the traces are relative to the fleet file: point them at the installed catalog's
    traces = Path(str(resources.files("greenfl.fleet").joinpath("catalog", "traces")))
    head = head.replace('trace = "traces/', f'trace = "{traces}/')
    path = folder / f"fleet-{device}.toml"
    path.write_text(head + "".join("[[population]]\n" + e for e in kept))
    return path


def run_one(arm: dict[str, object], fleet: str, precision: str, seed: int, out: Path) -> dict:
    sets = {**arm["sets"], "seed": seed, "train.precision": precision, "fleet.catalog": fleet}  # type: ignore[dict-item]
    overrides = [f"{k}={json.dumps(v)}" for k, v in sets.items()]
    t0 = time.perf_counter()
    greenfl.run(ROOT / str(arm["config"]), out, overrides=overrides)
    wall_s = time.perf_counter() - t0
    conn = sqlite3.connect(out / "ledger.sqlite")
    try:
        rounds = conn.execute("SELECT COUNT(*) FROM rounds").fetchone()[0]
        energy_j = conn.execute("SELECT SUM(energy_compute_j) FROM client_rounds").fetchone()[0]
        accuracy = conn.execute(
            "SELECT accuracy FROM rounds ORDER BY round DESC LIMIT 1"
        ).fetchone()[0]
        mix = dict(conn.execute("SELECT precision, COUNT(*) FROM client_rounds GROUP BY 1"))
    finally:
        conn.close()
    return {
        "energy_j_per_round": energy_j / rounds,
        "accuracy": accuracy,
        "mix": mix,
        "wall_s": wall_s,
    }


def _ms(xs: list[float], fmt: str) -> str:
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):{fmt}} +- {sd:{fmt}}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arms", nargs="*", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--rounds", type=int, default=None, help="digits rounds (default 100)")
    args = ap.parse_args()
    if args.rounds is not None:
        for name in ("digits/phone-high", "digits/builtin"):
            ARMS[name]["sets"]["train.rounds"] = args.rounds  # type: ignore[index]
    lines = [
        "| arm | precision | compute J/round fp32 | compute J/round | ratio | accuracy fp32 "
        "| accuracy | delta (pp) | clients by precision |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in args.arms:
            arm = ARMS[name]
            fleet = (
                "builtin"
                if arm["fleet"] == "builtin"
                else str(class_fleet(str(arm["fleet"]), folder))
            )
            prec = str(arm["precision"])
            pairs = []
            for seed in SEEDS:
                base = run_one(arm, fleet, "fp32", seed, folder / f"{name}-{seed}-fp32")
                low = run_one(arm, fleet, prec, seed, folder / f"{name}-{seed}-{prec}")
                pairs.append((base, low))
                print(
                    f"{name} seed {seed}: fp32 {base['energy_j_per_round']:.4g} J/round acc "
                    f"{base['accuracy']:.4f} ({base['wall_s']:.1f} s); {prec} "
                    f"{low['energy_j_per_round']:.4g} J/round acc {low['accuracy']:.4f} "
                    f"({low['wall_s']:.1f} s) {low['mix']}",
                    file=sys.stderr,
                )
            e32 = [b["energy_j_per_round"] for b, _ in pairs]
            elo = [lo["energy_j_per_round"] for _, lo in pairs]
            ratio = [a / b for a, b in zip(e32, elo, strict=True)]
            a32 = [b["accuracy"] for b, _ in pairs]
            alo = [lo["accuracy"] for _, lo in pairs]
            delta = [100 * (b - a) for a, b in zip(a32, alo, strict=True)]
            mix: dict[str, int] = {}
            for _, lo in pairs:
                for k, v in lo["mix"].items():
                    mix[k] = mix.get(k, 0) + v
            total = sum(mix.values())
            shares = ", ".join(f"{k} {v / total:.0%}" for k, v in sorted(mix.items()))
            lines.append(
                f"| {name} | {prec} | {_ms(e32, '.4g')} | {_ms(elo, '.4g')} | "
                f"{_ms(ratio, '.3f')}x | {_ms(a32, '.4f')} | {_ms(alo, '.4f')} | "
                f"{_ms(delta, '+.2f')} | {shares} |"
            )
    print("\n".join(lines))
    print(f"\n({len(args.arms) * len(SEEDS) * 2} runs, {time.perf_counter() - t_all:.0f} s)")


if __name__ == "__main__":
    main()
