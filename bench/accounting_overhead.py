"""What footprint accounting and the ledger cost: the round loop with engine.accounting on and
off, same workload, same trainer, runs interleaved in one process.

    PYTHONPATH=src python bench/accounting_overhead.py --workload W1 W2 --repeats 7 --rounds 20

Two measures, printed side by side as one JSON line per workload:

* direct: inside the runs with accounting on, the loop thread's CPU seconds spent in the
  accounting code (account_cohort, the state snapshot, the ledger write of the round: its
  rows, the server state and the commit, into a real SQLite file in a temporary folder), as
  a share of the loop thread's CPU seconds for the whole loop. This is the steady figure.
* on - off: the round time (from one round's end to the next's; round 1, which also holds
  the initial evaluation, is left out), median over every round of every repeat, with
  accounting on and off, as ``(on - off) / on``, in wall time and in the loop thread's CPU
  time. On a shared 2-vCPU machine the same mode's per-round medians move by up to +-10%
  from one invocation to the next (whole-run times by +-40%), so this difference is noise
  around the direct figure at these sizes; it is printed so that nothing is hidden.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import greenfl_bench  # noqa: E402

import greenfl.engine.loop as loop_module  # noqa: E402
from greenfl.engine.build import build_loop  # noqa: E402

SPENT = {"cpu_s": 0.0}


def _timed(fn: Callable[..., Any]) -> Callable[..., Any]:
    def inner(*args: Any, **kwargs: Any) -> Any:
        t = time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            SPENT["cpu_s"] += time.thread_time() - t

    return inner


loop_module.account_cohort = _timed(loop_module.account_cohort)


def time_loop(workload: str, accounting: bool, trainer: str, rounds: int) -> dict[str, Any]:
    cfg = greenfl_bench.config_for(workload, trainer, accounting=accounting)
    if rounds:
        cfg = cfg.replace(**{"train.rounds": rounds})
    with tempfile.TemporaryDirectory(prefix="greenfl-acct-") as out:
        loop = build_loop(cfg, out)
        loop.ledger.write_round = _timed(loop.ledger.write_round)  # type: ignore[method-assign]
        loop.snapshot = _timed(loop.snapshot)  # type: ignore[method-assign]
        SPENT["cpu_s"] = 0.0
        ends: list[tuple[float, float]] = []
        cpu0 = time.thread_time()
        loop.run(lambda _rec: ends.append((time.perf_counter(), time.thread_time())))
        cpu = time.thread_time() - cpu0
        loop.ledger.close()
    pairs = list(zip(ends, ends[1:], strict=False))
    return {
        "round_s": [b[0] - a[0] for a, b in pairs],
        "round_cpu_s": [b[1] - a[1] for a, b in pairs],
        "loop_cpu_s": cpu,
        "accounting_cpu_s": SPENT["cpu_s"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", nargs="+", default=["W1", "W2"])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--trainer", default="auto")
    ap.add_argument("--rounds", type=int, default=20, help="rounds a run (0: the workload's 10)")
    args = ap.parse_args()
    for workload in args.workload:
        for accounting in (True, False):  # warm-up: first-call costs out of the way
            time_loop(workload, accounting, args.trainer, args.rounds)
        runs: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
        for _ in range(args.repeats):
            for accounting in (True, False):
                runs[accounting].append(time_loop(workload, accounting, args.trainer, args.rounds))

        def med(on: bool, key: str, runs: dict[bool, list[dict[str, Any]]] = runs) -> float:
            return statistics.median(t for r in runs[on] for t in r[key])

        direct = statistics.median(r["accounting_cpu_s"] / r["loop_cpu_s"] for r in runs[True])
        line = {
            "workload": workload,
            "trainer": args.trainer,
            "share_direct": round(direct, 4),
            "accounting_ms_per_round": round(
                statistics.median(
                    r["accounting_cpu_s"] / (len(r["round_s"]) + 1) for r in runs[True]
                )
                * 1e3,
                3,
            ),
            "round_ms_on": round(med(True, "round_s") * 1e3, 3),
            "round_ms_off": round(med(False, "round_s") * 1e3, 3),
            "share_on_minus_off_wall": round(1 - med(False, "round_s") / med(True, "round_s"), 4),
            "share_on_minus_off_cpu": round(
                1 - med(False, "round_cpu_s") / med(True, "round_cpu_s"), 4
            ),
            "repeats": args.repeats,
            "rounds": args.rounds,
        }
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
