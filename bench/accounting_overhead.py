"""What footprint accounting and the ledger cost: round-loop time with engine.accounting on
and off, same workload, same trainer, alternating runs in one process.

    PYTHONPATH=src python bench/accounting_overhead.py --workload W1 W2 --repeats 3

Times are CPU seconds of the process (time.process_time) around RoundLoop.run(), which are
far less disturbed than wall time when other jobs share the cores; wall seconds are printed
too. The ledger is written to a temporary folder (a real SQLite file, as in a real run).
Prints one JSON line per workload: medians on and off, the difference as a share of the
loop, ``(on - off) / on``, and, measured directly inside the runs with accounting on, the
share of loop time spent in the accounting code itself (account_cohort, the ledger write,
the state snapshot): the second is the steadier number on a busy machine.
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
        t = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            SPENT["cpu_s"] += time.process_time() - t

    return inner


loop_module.account_cohort = _timed(loop_module.account_cohort)


def time_loop(workload: str, accounting: bool, trainer: str) -> tuple[float, float, float]:
    """(loop CPU s, loop wall s, CPU s inside the accounting code)."""
    cfg = greenfl_bench.config_for(workload, trainer, accounting=accounting)
    with tempfile.TemporaryDirectory(prefix="greenfl-acct-") as out:
        loop = build_loop(cfg, out)
        loop.ledger.write_round = _timed(loop.ledger.write_round)  # type: ignore[method-assign]
        loop.snapshot = _timed(loop.snapshot)  # type: ignore[method-assign]
        SPENT["cpu_s"] = 0.0
        cpu0, wall0 = time.process_time(), time.perf_counter()
        loop.run()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        loop.ledger.close()
    return cpu, wall, SPENT["cpu_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", nargs="+", default=["W1", "W2"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--trainer", default="auto")
    args = ap.parse_args()
    for workload in args.workload:
        time_loop(workload, True, args.trainer)  # warm-up: first-call costs out of the way
        runs: dict[bool, list[tuple[float, float, float]]] = {True: [], False: []}
        for _ in range(args.repeats):
            for accounting in (True, False):
                runs[accounting].append(time_loop(workload, accounting, args.trainer))
        on = statistics.median(c for c, _, _ in runs[True])
        off = statistics.median(c for c, _, _ in runs[False])
        inside = statistics.median(a / c for c, _, a in runs[True])
        line = {
            "workload": workload,
            "trainer": args.trainer,
            "loop_cpu_s_accounting_on": round(on, 3),
            "loop_cpu_s_accounting_off": round(off, 3),
            "loop_wall_s_on": round(statistics.median(w for _, w, _ in runs[True]), 3),
            "loop_wall_s_off": round(statistics.median(w for _, w, _ in runs[False]), 3),
            "share_on_minus_off": round((on - off) / on, 4),
            "share_inside_accounting": round(inside, 4),
            "repeats": args.repeats,
        }
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
