"""A million clients: selection time per round and the peak memory of a whole run.

    PYTHONPATH=src python bench/population_scale.py selection     # ms to pick 1,000 of 1M
    PYTHONPATH=src python bench/population_scale.py run --rounds 10   # peak RSS of a 1M run

``selection`` times what the round loop does before training: the available clients
(``fleet.availability`` always and diurnal), the SelectionContext over the per-client arrays,
and the random selector drawing 1,000; it prints the median and max over 50 rounds.
``run`` runs Synthetic(1,1) with 1,000,000 clients and 1,000 a round through greenfl.run,
accounting and ledger on, and prints the peak RSS (ru_maxrss) and the wall time per round.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone

import numpy as np

MILLION = 1_000_000


def selection(rounds: int) -> None:
    from greenfl.fleet.catalog import load_fleet
    from greenfl.fleet.population import Population, available
    from greenfl.selection.base import SelectionContext
    from greenfl.selection.random import RandomSelector

    pop = Population.assign(load_fleet("builtin"), np.full(MILLION, 20, np.int64), seed=0)
    part = np.zeros(MILLION, np.int32)
    last = np.full(MILLION, -1, np.int32)
    loss = np.full(MILLION, np.nan, np.float32)
    rng = np.random.default_rng(0)
    start = datetime(2026, 1, 15, tzinfo=timezone.utc)
    for mode in ("always", "diurnal"):
        times = []
        for r in range(rounds):
            t = time.perf_counter()
            cand = available(pop, start + timedelta(hours=r), mode, rng)
            ctx = SelectionContext(r + 1, 3600.0 * r, pop, part, last, loss)
            chosen = RandomSelector().select(cand, 1000, ctx, rng)
            last[chosen] = r + 1
            times.append(time.perf_counter() - t)
        line = {
            "bench": "selection",
            "availability": mode,
            "population": MILLION,
            "k": 1000,
            "median_ms": round(statistics.median(times) * 1e3, 2),
            "max_ms": round(max(times) * 1e3, 2),
        }
        print(json.dumps(line), flush=True)


def run(rounds: int, trainer: str) -> None:
    import greenfl

    cfg = greenfl.build_config(
        {
            "data": {"dataset": "synthetic", "num_clients": MILLION},
            "train": {"rounds": rounds, "clients_per_round": 1000},
            "engine": {"trainer": trainer},
        }
    )
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="greenfl-1m-") as out:
        res = greenfl.run(cfg, out)
    line = {
        "bench": "million_client_run",
        "rounds": rounds,
        "trainer": trainer,
        "wall_s": round(time.perf_counter() - t, 2),
        "round_wall_s_median": round(statistics.median(r.wall_s for r in res.history), 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "final_accuracy": res.final_accuracy,
    }
    print(json.dumps(line), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["selection", "run"])
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--trainer", default="auto")
    args = ap.parse_args()
    if args.what == "selection":
        selection(args.rounds or 50)
    else:
        run(args.rounds or 10, args.trainer)


if __name__ == "__main__":
    main()
