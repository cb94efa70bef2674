"""What footprint accounting and the ledger cost: the round loop with engine.accounting on and
off, same workload, same trainer, runs interleaved in one process.

    PYTHONPATH=src python bench/accounting_overhead.py --workload W1 W2 --repeats 15 --rounds 20

Four measures, printed as one JSON line per workload:

* on - off, per round, paired: each repeat runs accounting on and off back to back (in
  alternating order); its share is ``(on - off) / on`` of their median round times (from
  one round's end to the next's; round 1, which also holds the initial evaluation, is left
  out). Printed: the median over the repeats, the quartiles and the range. The machine's
  speed drifts by +-10% from one run to the next (a VM on a shared host), so a single pair
  says little; the median of many does. Also the pooled medians over every round of every
  repeat (``share_on_minus_off_wall`` / ``_cpu``), which mix that drift in.
* on - off, interleaved (``--interleaved-rounds N``): an accounting-on and an accounting-off
  loop of the same run in one process, stepped one round each in turn, so the drift falls
  on both alike. Each loop then has half the wall clock: the on loop's
  ``engine.ledger_batch_s`` is doubled, so its hand-overs are as many rounds apart as in a
  run of its own.
* on - off, whole loop: ``loop.run()``, the summary and closing the ledger, median over the
  repeats: this also holds what a run pays once, at its end (the summary's queries over the
  ledger, waiting for the writer to commit the last rounds, closing the file).
* direct: inside the runs with accounting on, the loop thread's CPU seconds in the
  accounting code (``account_cohort``; ``LedgerWriter.write_round``, with the snapshots and
  hand-overs it makes; ``LedgerWriter.flush``), as a share of the loop thread's CPU seconds
  for the whole loop. The ledger's writer process runs on the other core; its CPU time per
  round is printed beside (``writer_cpu_ms_per_round``).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import greenfl_bench  # noqa: E402

import greenfl.engine.steps as loop_module  # noqa: E402
from greenfl.engine.observers import RoundHook  # noqa: E402
from greenfl.factories import build_loop  # noqa: E402
from greenfl.ledger.writer import LedgerWriter  # noqa: E402

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
LedgerWriter.write_round = _timed(LedgerWriter.write_round)  # type: ignore[method-assign]
LedgerWriter.flush = _timed(LedgerWriter.flush)  # type: ignore[method-assign]


def _children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def time_loop(
    workload: str, accounting: bool, trainer: str, rounds: int, threads: int | None = None
) -> dict[str, Any]:
    cfg = greenfl_bench.config_for(workload, trainer, accounting=accounting)
    if rounds:
        cfg = cfg.replace(**{"train.rounds": rounds})
    if threads is not None:
        cfg = cfg.replace(**{"engine.threads": threads})
    with tempfile.TemporaryDirectory(prefix="greenfl-acct-") as out:
        ends: list[tuple[float, float]] = []
        hook = RoundHook(lambda _rec: ends.append((time.perf_counter(), time.thread_time())))
        loop = build_loop(cfg, out, observers=[hook])
        SPENT["cpu_s"] = 0.0
        children0 = _children_cpu_s()
        cpu0, wall0 = time.thread_time(), time.perf_counter()
        loop.run()
        loop.summary()
        loop.ledger.close()  # waits for the writer to commit the last rounds, and reaps it
        cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
        writer_cpu_s = _children_cpu_s() - children0
    pairs = list(zip(ends, ends[1:], strict=False))
    return {
        "round_s": [b[0] - a[0] for a, b in pairs],
        "round_cpu_s": [b[1] - a[1] for a, b in pairs],
        "loop_cpu_s": cpu,
        "loop_wall_s": wall,
        "accounting_cpu_s": SPENT["cpu_s"],
        "writer_cpu_s": writer_cpu_s,
        "rounds": len(ends),
    }


def interleaved_rounds(
    workload: str, trainer: str, rounds: int, threads: int | None = None
) -> dict[str, Any]:
    """Two loops of the same run, accounting on and off, stepped one round each in turn
    (which goes first alternates): the machine's drift then falls on both alike."""
    loops = {}
    with (
        tempfile.TemporaryDirectory(prefix="greenfl-acct-") as on_dir,
        tempfile.TemporaryDirectory(prefix="greenfl-acct-") as off_dir,
    ):
        for accounting, out in ((True, on_dir), (False, off_dir)):
            cfg = greenfl_bench.config_for(workload, trainer, accounting=accounting)
            # Each loop has half the wall clock here: twice the batch keeps the on loop's
            # hand-overs as many rounds apart as in a run of its own.
            cfg = cfg.replace(
                **{"train.rounds": rounds, "engine.ledger_batch_s": 2 * cfg.engine.ledger_batch_s}
            )
            if threads is not None:
                cfg = cfg.replace(**{"engine.threads": threads})
            loops[accounting] = build_loop(cfg, out)
        times: dict[bool, list[float]] = {True: [], False: []}
        for i in range(rounds):
            for accounting in (True, False) if i % 2 == 0 else (False, True):
                t = time.perf_counter()
                loops[accounting].run_round()
                times[accounting].append(time.perf_counter() - t)
        for loop in loops.values():
            loop.ledger.close()
    on, off = times[True][2:], times[False][2:]  # round 1 also evaluates the initial model
    paired = [1 - b / a for a, b in zip(on, off, strict=True)]
    return {
        "round_ms_on": round(statistics.median(on) * 1e3, 3),
        "round_ms_off": round(statistics.median(off) * 1e3, 3),
        "share_interleaved": _share(statistics.median(on), statistics.median(off)),
        "share_interleaved_paired_median": round(statistics.median(paired), 4),
        "share_interleaved_mean": _share(statistics.fmean(on), statistics.fmean(off)),
        "rounds": len(on),
    }


def _share(on: float, off: float) -> float:
    return round(1 - off / on, 4)


def _quartiles(values: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", nargs="+", default=["W1", "W2"])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--trainer", default="auto")
    ap.add_argument("--rounds", type=int, default=20, help="rounds a run (0: the workload's 10)")
    ap.add_argument("--threads", type=int, help="engine.threads (default: the config's)")
    ap.add_argument(
        "--interleaved-rounds",
        type=int,
        default=0,
        help="also step an accounting-on and an accounting-off loop a round each in turn, "
        "for this many rounds (0: not)",
    )
    args = ap.parse_args()
    for workload in args.workload:
        if args.interleaved_rounds:
            line = interleaved_rounds(workload, args.trainer, args.interleaved_rounds, args.threads)
            print(json.dumps({"workload": workload, "mode": "interleaved", **line}), flush=True)
        if not args.repeats:
            continue
        for accounting in (True, False):  # warm-up: first-call costs out of the way
            time_loop(workload, accounting, args.trainer, args.rounds, args.threads)
        runs: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
        for i in range(args.repeats):
            order = (True, False) if i % 2 == 0 else (False, True)
            for accounting in order:
                runs[accounting].append(
                    time_loop(workload, accounting, args.trainer, args.rounds, args.threads)
                )

        def med(on: bool, key: str, runs: dict[bool, list[dict[str, Any]]] = runs) -> float:
            return statistics.median(t for r in runs[on] for t in r[key])

        paired = [
            _share(statistics.median(a["round_s"]), statistics.median(b["round_s"]))
            for a, b in zip(runs[True], runs[False], strict=True)
        ]
        on_runs = runs[True]
        line = {
            "workload": workload,
            "trainer": args.trainer,
            "round_ms_on": round(med(True, "round_s") * 1e3, 3),
            "round_ms_off": round(med(False, "round_s") * 1e3, 3),
            "share_on_minus_off_wall": _share(med(True, "round_s"), med(False, "round_s")),
            "share_on_minus_off_cpu": _share(med(True, "round_cpu_s"), med(False, "round_cpu_s")),
            "share_paired_median": round(statistics.median(paired), 4),
            "share_paired_iqr": [round(q, 4) for q in _quartiles(paired)],
            "share_paired_range": [min(paired), max(paired)],
            "loop_s_on": round(statistics.median(r["loop_wall_s"] for r in on_runs), 4),
            "loop_s_off": round(statistics.median(r["loop_wall_s"] for r in runs[False]), 4),
            "share_whole_loop_wall": _share(
                statistics.median(r["loop_wall_s"] for r in on_runs),
                statistics.median(r["loop_wall_s"] for r in runs[False]),
            ),
            "share_direct": round(
                statistics.median(r["accounting_cpu_s"] / r["loop_cpu_s"] for r in on_runs), 4
            ),
            "accounting_ms_per_round": round(
                statistics.median(r["accounting_cpu_s"] / r["rounds"] for r in on_runs) * 1e3, 3
            ),
            "writer_cpu_ms_per_round": round(
                statistics.median(r["writer_cpu_s"] / r["rounds"] for r in on_runs) * 1e3, 3
            ),
            "threads": args.threads,
            "repeats": args.repeats,
            "rounds": args.rounds,
        }
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
