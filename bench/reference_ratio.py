"""The reference result of README and docs/policies.md: gCO2e to 90% accuracy of
examples/reference-greenfl.toml against the tuned FedAvg (examples/tuned-fedavg.toml, the
best of the grid bench/scenario_tables.py searches) and against the untuned shipped
reference-fedavg.toml, seeds 0-2. The footprint is modelled from counted work, so the
numbers repeat on any host.

    python bench/reference_ratio.py
"""

from __future__ import annotations

import json
import statistics
import tempfile

import greenfl
from greenfl.config import load_config

RUNS = {
    "greenfl": ("examples/reference-greenfl.toml", []),
    "fedavg tuned": ("examples/tuned-fedavg.toml", []),
    "fedavg shipped": ("examples/reference-fedavg.toml", []),
}
SEEDS = (0, 1, 2)


def main() -> None:
    grams: dict[str, list[float]] = {}
    for name, (path, sets) in RUNS.items():
        for seed in SEEDS:
            cfg = load_config(path, [*sets, f"seed={seed}", "report.html=false"])
            with tempfile.TemporaryDirectory() as out:
                greenfl.run(cfg, out)
                with open(f"{out}/summary.json") as fh:
                    s = json.load(fh)
            grams.setdefault(name, []).append(s["carbon_g_to_target"])
            line = {"run": name, "seed": seed, "carbon_g_to_target": s["carbon_g_to_target"]}
            print(json.dumps(line | {"rounds_to_target": s["rounds_to_target"]}), flush=True)
    mean = {k: statistics.mean(v) for k, v in grams.items()}
    for base in ("fedavg tuned", "fedavg shipped"):
        paired = [b / g for b, g in zip(grams[base], grams["greenfl"], strict=True)]
        pairs = ", ".join(f"{r:.2f}" for r in paired)
        ratio = mean[base] / mean["greenfl"]
        print(f"{base}: {mean[base]:.4g} g vs greenfl {mean['greenfl']:.4g} g -> {ratio:.2f}x "
              f"(paired {pairs})")  # fmt: skip


if __name__ == "__main__":
    main()
