"""greenfl's side of the side-by-side benchmark: one workload, one JSON result line.

    PYTHONPATH=src python bench/greenfl_bench.py --workload W2 [--trainer vectorised]

The workloads are those of bench/peers/workloads.py, expressed as greenfl configs through the
public API (``greenfl.build_config`` + ``greenfl.run``). Footprint accounting and the ledger
stay on (the ledger is written to a temporary folder), as in any greenfl run:

* W1: digits (80/20 split), 1,000 clients IID, 100 a round, 10 rounds, MLP 64-64-10,
  1 local epoch, batch 16, lr 0.1.
* W2: Synthetic(1,1), 10,000 clients (lognormal sizes, mean 20, clipped 5..444), 1,000 a
  round, 10 rounds, MLP 60-64-10, batch 16, lr 0.1.
* W3: 28x28 synthetic images, 100 clients x 100 samples, the CNN (18,378 parameters),
  10 a round, 10 rounds, batch 16, lr 0.05.
* W4: femnist, read from the LEAF JSON folder bench/peers/workloads.py writes (100 users,
  ~200 samples each, 62 classes), LEAF's FEMNIST CNN, 10 a round, 10 rounds, batch 16, lr 0.05.
* W5: the built-in shakespeare, 100 roles, char_lstm, 10 a round, 10 rounds, batch 16, lr 0.8,
  at most 10 local steps.

Per-client evaluation is off (``eval.every = 0``): the peers evaluate centrally only.

Each framework generates its workload's data its own way (same sizes, shapes and recipe, not
the same bytes), so accuracies are comparable in kind, not to the digit.

Printed keys: framework, workload, wall_s (interpreter start to the end, imports included),
loop_s (greenfl's run: loop set-up, the rounds, ledger and summary), peak_rss_mb
(ru_maxrss of this process plus the ledger writer process's VmHWM), final_accuracy, and:
trainer, accounting, version, accuracy_per_round, writer_peak_rss_mb, foreign_cpu_s (CPU
seconds other processes used meanwhile: well above 1 s means a disturbed measurement).
"""

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402


def _machine_busy_s() -> float:
    """CPU seconds all processes have used since boot (from /proc/stat)."""
    with open("/proc/stat") as fh:
        fields = [float(v) for v in fh.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


BUSY0 = _machine_busy_s()

from workload_configs import WORKLOADS, raw_config  # noqa: E402

import greenfl  # noqa: E402

WRITER = {"peak_mb": 0.0}


def _watch_writer(pid: int | None) -> None:
    """The ledger writer process's peak RSS so far (VmHWM; not its getrusage maximum, which
    counts the parent's memory at the fork before exec)."""
    if pid is not None:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    WRITER["peak_mb"] = max(WRITER["peak_mb"], int(line.split()[1]) / 1024)


def config_for(workload: str, trainer: str, accounting: bool = True) -> greenfl.RunConfig:
    return greenfl.build_config(raw_config(workload, trainer, accounting))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", choices=sorted(WORKLOADS), required=True)
    ap.add_argument("--trainer", choices=["auto", "sequential", "vectorised"], default="auto")
    ap.add_argument("--no-accounting", action="store_true", help="only to measure its cost")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()

    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)

    cfg = config_for(args.workload, args.trainer, accounting=not args.no_accounting)
    with tempfile.TemporaryDirectory(prefix="greenfl-bench-") as out:
        from greenfl.engine.observers import RoundHook
        from greenfl.engine.session import run_session
        from greenfl.factories import build_loop

        t_loop = time.perf_counter()
        # greenfl.run, with each round also looking at the ledger's writer process
        loop = build_loop(cfg, out, observers=[RoundHook(lambda _r: _watch_writer(
            loop.ledger.writer_pid))])  # fmt: skip
        session = run_session(loop, cfg.to_dict(), Path(out))
        loop_s = time.perf_counter() - t_loop
        res = greenfl.RunResult(cfg, loop.history, session.summary, session.stop_reason, None)
        resolved = greenfl.read_ledger(out).meta["trainer"]
    own = os.times()  # children: the ledger's writer process, reaped when the run closed
    own_s = own.user + own.system + own.children_user + own.children_system
    foreign = _machine_busy_s() - BUSY0 - own_s
    line = {
        "framework": "greenfl",
        "workload": args.workload,
        "wall_s": round(time.perf_counter() - T0, 3),
        "loop_s": round(loop_s, 3),
        # this process plus the ledger's writer process (both peaks added: an upper bound)
        "peak_rss_mb": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 + WRITER["peak_mb"], 1
        ),
        "writer_peak_rss_mb": round(WRITER["peak_mb"], 1),
        "final_accuracy": round(float(res.final_accuracy), 4),
        "trainer": resolved,
        "accounting": cfg.engine.accounting,
        "version": f"greenfl {greenfl.__version__}, torch {torch.__version__}",
        "accuracy_per_round": [round(r.accuracy, 4) for r in res.history],
        "foreign_cpu_s": round(max(0.0, foreign), 2),
        "torch_threads": torch.get_num_threads(),
    }
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
