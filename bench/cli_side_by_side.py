"""greenfl's CLI as a user runs it (`greenfl run CONFIG --out DIR`, report on) side by side
with pfl-research and a plain PyTorch loop on W1-W3, in one run, alternating frameworks
within each repetition so that machine drift hits all of them alike.

usage: python bench/cli_side_by_side.py [--workloads W1 W2] [--repeats 3]
(needs bench/.venv-peers from bench/peers/setup_venv.sh, and greenfl installed in .venv)
Prints one JSON line per run and a markdown table of medians and ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from greenfl_bench import config_for  # noqa: E402

ROOT = HERE.parent
GREENFL = ROOT / ".venv" / "bin" / "greenfl"
PEERS = HERE / ".venv-peers" / "bin" / "python"


def _cli_wall_s(workload: str, report: bool) -> float:
    cfg = config_for(workload, "auto").model_dump(mode="json")
    cfg["report"]["html"] = report
    with tempfile.TemporaryDirectory(prefix="greenfl-cli-") as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(json.dumps(cfg))  # JSON is YAML
        t0 = time.perf_counter()
        subprocess.run([str(GREENFL), "run", str(path), "--out", f"{tmp}/run", "--quiet"],
                       check=True, capture_output=True)  # fmt: skip
        return time.perf_counter() - t0


def _peer_wall_s(script: str, workload: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([str(PEERS), str(HERE / "peers" / script), "--workload", workload],
                   check=True, capture_output=True)  # fmt: skip
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", nargs="+", default=["W1", "W2", "W3"])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    runs: dict[tuple[str, str], list[float]] = {}
    for rep in range(args.repeats):
        for w in args.workloads:
            for name, fn in (
                ("greenfl CLI", lambda w=w: _cli_wall_s(w, report=True)),
                ("greenfl CLI, no report", lambda w=w: _cli_wall_s(w, report=False)),
                ("pfl", lambda w=w: _peer_wall_s("pfl_sim.py", w)),
                ("plain loop", lambda w=w: _peer_wall_s("plain_torch.py", w)),
            ):
                wall = fn()
                runs.setdefault((w, name), []).append(wall)
                print(json.dumps({"workload": w, "framework": name, "repeat": rep,
                                  "wall_s": round(wall, 3)}), flush=True)  # fmt: skip
    print("\n| workload | greenfl CLI | CLI, no report | pfl | plain loop | CLI / pfl |")
    print("|---|---:|---:|---:|---:|---:|")
    for w in args.workloads:
        med = {n: statistics.median(runs[(w, n)]) for (ww, n) in runs if ww == w}
        print(f"| {w} | {med['greenfl CLI']:.2f} s | {med['greenfl CLI, no report']:.2f} s | "
              f"{med['pfl']:.2f} s | {med['plain loop']:.2f} s | "
              f"{med['greenfl CLI'] / med['pfl']:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
