"""What a new user meets in the first hour, measured with the CLI's shipped defaults:

- start-up: `greenfl --help`, `-h`, `--version`, a usage error and `import greenfl` (wall
  time, median of runs; and whether torch was imported: it must not be);
- load: W1-W3 through `greenfl run` idle and with one CPU-bound process per core running
  beside it (wall and CPU seconds; the loaded/idle wall ratio, target <= 2.5, fair sharing
  alone gives 2);
- per-client evaluation: each run again with `eval.every = 0`; the share of wall time the
  default evaluation costs, idle and loaded (target <= 20%);
- a dataset switched by name: one round of `--set data.dataset=shakespeare` with its own
  defaults (rounds.wall_s from the ledger).

usage: python bench/first_hour.py [--repeats 3] [--only startup load shakespeare]
Prints JSON lines and markdown tables (BENCHMARKS.md, "First hour").
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GREENFL = Path(sys.executable).with_name("greenfl")

# W1-W3 of bench/workload_configs.py as a user would write them: the workload's own data,
# model, cohort and rounds, everything else the shipped defaults (report included).
WORKLOADS = {
    "W1": ["data.dataset=digits", "data.num_clients=1000", "model.name=mlp",
           "train.rounds=10", "train.clients_per_round=100", "train.batch_size=16",
           "train.local_epochs=1"],
    "W2": ["data.dataset=synthetic", "data.num_clients=10000",
           "data.params.samples_per_client=20", "model.name=mlp", "train.rounds=10",
           "train.clients_per_round=1000", "train.batch_size=16"],
    "W3": ["data.dataset=images", "data.num_clients=100", "data.params.samples_per_client=100",
           "model.name=cnn", "train.rounds=10", "train.clients_per_round=10",
           "train.batch_size=16", "train.lr=0.05"],
}  # fmt: skip


def _spin() -> None:
    while True:
        pass


class Load:
    """One CPU-bound process per core, for the duration of a ``with`` block."""

    def __enter__(self) -> Load:
        self.procs = [multiprocessing.Process(target=_spin, daemon=True)
                      for _ in range(os.cpu_count() or 1)]  # fmt: skip
        for p in self.procs:
            p.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.terminate()
            p.join()


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(wall s, CPU s of the child and its children, stderr)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stderr


def startup(repeats: int) -> list[dict]:
    probe = (
        "import sys; from greenfl.cli import main; code = main({args!r}); "
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)"
    )
    cases = {
        "greenfl --help": ["--help"],
        "greenfl -h": ["-h"],
        "greenfl --version": ["--version"],
        "usage error (greenfl run --bogus)": ["run", "--bogus"],
        "usage error (--set trian.rounds=3)": ["run", "--set", "trian.rounds=3"],
    }
    rows = []
    for name, args in cases.items():
        walls = [timed([str(GREENFL), *args])[0] for _ in range(repeats)]
        _, _, err = timed([sys.executable, "-c", probe.format(args=args)])
        rows.append({"what": name, "wall_s": statistics.median(walls),
                     "torch_imported": "NO-TORCH" not in err})  # fmt: skip
    walls = [timed([sys.executable, "-c", "import greenfl"])[0] for _ in range(repeats)]
    _, _, err = timed([sys.executable, "-c", "import sys, greenfl; print('torch' in "
                       "sys.modules, file=sys.stderr)"])  # fmt: skip
    rows.append({"what": "import greenfl", "wall_s": statistics.median(walls),
                 "torch_imported": "True" in err})  # fmt: skip
    return rows


def cli_run(workload: str, extra: list[str], tmp: Path) -> tuple[float, float]:
    out = tmp / "run"
    cmd = [str(GREENFL), "run", "--quiet", "--force", "--out", str(out)]
    for kv in [*WORKLOADS[workload], *extra]:
        cmd += ["--set", kv]
    wall, cpu, err = timed(cmd)
    if not (out / "summary.json").exists():
        raise SystemExit(f"{workload} failed: {err[-2000:]}")
    return wall, cpu


def load(repeats: int, workloads: list[str]) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="greenfl-first-hour-") as tmp:
        for w in workloads:
            runs: dict[tuple[str, str], list[tuple[float, float]]] = {}
            for _ in range(repeats):
                for state in ("idle", "loaded"):
                    for evals in ("default", "eval.every=0"):
                        extra = ["eval.every=0"] if evals != "default" else []
                        if state == "loaded":
                            with Load():
                                got = cli_run(w, extra, Path(tmp))
                        else:
                            got = cli_run(w, extra, Path(tmp))
                        runs.setdefault((state, evals), []).append(got)
                        print(json.dumps({"workload": w, "state": state, "eval": evals,
                                          "wall_s": round(got[0], 2),
                                          "cpu_s": round(got[1], 2)}), flush=True)  # fmt: skip
            med = {k: (statistics.median(a for a, _ in v), statistics.median(c for _, c in v))
                   for k, v in runs.items()}  # fmt: skip
            idle, loaded = med[("idle", "default")], med[("loaded", "default")]
            rows.append({
                "workload": w, "idle_wall_s": idle[0], "idle_cpu_s": idle[1],
                "loaded_wall_s": loaded[0], "loaded_cpu_s": loaded[1],
                "loaded_over_idle": loaded[0] / idle[0],
                "eval_share_idle": 1 - med[("idle", "eval.every=0")][0] / idle[0],
                "eval_share_loaded": 1 - med[("loaded", "eval.every=0")][0] / loaded[0],
            })  # fmt: skip
    return rows


def shakespeare() -> dict:
    with tempfile.TemporaryDirectory(prefix="greenfl-shakespeare-") as tmp:
        out = Path(tmp) / "run"
        wall, cpu, err = timed([str(GREENFL), "run", "--quiet", "--out", str(out), "--set",
                                "data.dataset=shakespeare", "--set", "train.rounds=2"])  # fmt: skip
        conn = sqlite3.connect(out / "ledger.sqlite")
        rounds = [r[0] for r in conn.execute("SELECT wall_s FROM rounds ORDER BY round")]
        conn.close()
    return {"what": "--set data.dataset=shakespeare, 2 rounds", "process_wall_s": wall,
            "cpu_s": cpu, "round_wall_s": rounds}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", nargs="+", default=["startup", "load", "shakespeare"])
    ap.add_argument("--workloads", nargs="+", default=list(WORKLOADS))
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores, {os.uname().machine}", flush=True)
    if "startup" in args.only:
        rows = startup(max(args.repeats, 5))
        print("\n| command | wall (median) | imports torch |\n|---|---:|---|")
        for r in rows:
            torch = "yes" if r["torch_imported"] else "no"
            print(f"| {r['what']} | {r['wall_s']:.3f} s | {torch} |")
    if "load" in args.only:
        rows = load(args.repeats, args.workloads)
        print("\n| workload | idle wall / CPU | loaded wall / CPU | loaded / idle | "
              "eval share idle | eval share loaded |\n|---|---:|---:|---:|---:|---:|")  # fmt: skip
        for r in rows:
            print(f"| {r['workload']} | {r['idle_wall_s']:.1f} s / {r['idle_cpu_s']:.1f} s | "
                  f"{r['loaded_wall_s']:.1f} s / {r['loaded_cpu_s']:.1f} s | "
                  f"{r['loaded_over_idle']:.2f}x | {r['eval_share_idle']:.0%} | "
                  f"{r['eval_share_loaded']:.0%} |")  # fmt: skip
    if "shakespeare" in args.only:
        print(json.dumps(shakespeare()))


if __name__ == "__main__":
    main()
