"""What footprint accounting and the ledger cost: round-loop time with engine.accounting off,
on with the ledger written inline, and on with the ledger written by its background thread
(the default of simulated runs). Same workload, same trainer, runs interleaved in one process.

    PYTHONPATH=src python bench/accounting_overhead.py --workload W1 W2 --repeats 7

Round-loop time is wall time around RoundLoop.run() (the rounds, and the final flush of the
ledger); CPU seconds of the process (time.process_time, all threads) are printed too. The
ledger is a real SQLite file in a temporary folder. Prints one JSON line per workload: the
medians of each mode, the accounting shares ``(on - off) / on`` in wall and in CPU time, and,
measured directly inside the runs, the CPU seconds spent in the accounting code on the loop's
thread (account_cohort, the state snapshot, the hand-over to the writer) and on the writer
thread (binding the rows, SQLite, the commit), as shares of the loop.
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

import greenfl.engine.build as build_module  # noqa: E402
import greenfl.engine.loop as loop_module  # noqa: E402
from greenfl.engine.build import build_loop  # noqa: E402
from greenfl.ledger.writer import LedgerWriter  # noqa: E402

SPENT = {"loop_thread_cpu_s": 0.0, "writer_thread_cpu_s": 0.0}
MODES = ("off", "inline", "background")


def _timed(fn: Callable[..., Any], key: str) -> Callable[..., Any]:
    def inner(*args: Any, **kwargs: Any) -> Any:
        t = time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            SPENT[key] += time.thread_time() - t

    return inner


loop_module.account_cohort = _timed(loop_module.account_cohort, "loop_thread_cpu_s")


def time_loop(workload: str, mode: str, trainer: str) -> dict[str, float]:
    cfg = greenfl_bench.config_for(workload, trainer, accounting=mode != "off")

    def ledger_for(path: Any, background: bool = False) -> LedgerWriter:
        return LedgerWriter(path, background=mode == "background")

    build_module.LedgerWriter = ledger_for  # type: ignore[assignment,misc]
    with tempfile.TemporaryDirectory(prefix="greenfl-acct-") as out:
        loop = build_loop(cfg, out)
        ledger = loop.ledger
        ledger.write_round = _timed(ledger.write_round, "loop_thread_cpu_s")  # type: ignore[method-assign]
        ledger._write_round = _timed(ledger._write_round, "writer_thread_cpu_s")  # type: ignore[method-assign]
        loop.snapshot = _timed(loop.snapshot, "loop_thread_cpu_s")  # type: ignore[method-assign]
        for key in SPENT:
            SPENT[key] = 0.0
        cpu0, wall0 = time.process_time(), time.perf_counter()
        loop.run()
        ledger.flush()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        ledger.close()
    build_module.LedgerWriter = LedgerWriter  # type: ignore[misc]
    return {"wall_s": wall, "cpu_s": cpu, **SPENT}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", nargs="+", default=["W1", "W2"])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--trainer", default="auto")
    args = ap.parse_args()
    for workload in args.workload:
        for mode in MODES:  # warm-up: first-call costs out of the way
            time_loop(workload, mode, args.trainer)
        runs: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
        for _ in range(args.repeats):
            for mode in MODES:
                runs[mode].append(time_loop(workload, mode, args.trainer))

        def med(mode: str, key: str, runs: dict[str, list[dict[str, float]]] = runs) -> float:
            return statistics.median(r[key] for r in runs[mode])

        line: dict[str, Any] = {"workload": workload, "trainer": args.trainer}
        for mode in MODES:
            line[f"wall_s_{mode}"] = round(med(mode, "wall_s"), 4)
            line[f"cpu_s_{mode}"] = round(med(mode, "cpu_s"), 4)
        off_wall, off_cpu = med("off", "wall_s"), med("off", "cpu_s")
        for mode in ("inline", "background"):
            line[f"wall_share_{mode}"] = round(1 - off_wall / med(mode, "wall_s"), 4)
            line[f"cpu_share_{mode}"] = round(1 - off_cpu / med(mode, "cpu_s"), 4)
        bg = runs["background"]
        line["loop_thread_share_background"] = round(
            statistics.median(r["loop_thread_cpu_s"] / r["wall_s"] for r in bg), 4
        )
        line["writer_thread_share_background"] = round(
            statistics.median(r["writer_thread_cpu_s"] / r["wall_s"] for r in bg), 4
        )
        line["repeats"] = args.repeats
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
