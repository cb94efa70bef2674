"""What greenfl's footprint mod and GreenflStrategy add to a Flower simulation round (issue
32's target: at most 3% of a round's wall time on W1 and W3).

    python bench/flower_overhead.py --workloads W1 W3 --pairs 3

The Flower app of bench/peers/flower_sim.py (Flower's Message API, FedAvg, a central
``evaluate_fn``, ``run_simulation`` on Ray with 1 CPU per ClientApp), run side by side in
one process tree: ``plain`` and ``greenfl`` (the same app with ``footprint_mod`` on the
ClientApp and ``GreenflStrategy(FedAvg(...), fleet="builtin", out=...)`` around the
strategy), alternating plain/greenfl and greenfl/plain pair by pair so that drift in the
machine's load falls on both. Each run is its own process (Ray is started fresh for each);
the figure is a round's wall time, between the central evaluations that end consecutive
rounds, median over rounds 2..N (Ray's start-up is out). What the wrapper does once (bind
the nodes and open the ledger in round 1, the summary at the end) is reported beside it:
the whole loop's seconds. Results: bench/results/flower_overhead.json."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "flower_overhead.json"


def one_run(workload: str, greenfl: bool, out: str) -> dict[str, float]:
    """(in a child process) the median round's seconds (rounds 2..N) and the loop's."""
    import logging

    sys.path.insert(0, str(HERE / "peers"))
    import workloads
    from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp
    from flwr.serverapp.strategy import FedAvg
    from flwr.simulation import run_simulation

    from greenfl.flower import GreenflStrategy, footprint_mod

    logging.getLogger("flwr").setLevel(logging.WARNING)
    spec = workloads.SPECS[workload]
    data = workloads.load(workload)
    client_app = ClientApp(mods=[footprint_mod] if greenfl else [])

    @client_app.train()
    def train(msg: Message, context: Context) -> Message:
        cfg = msg.content["config"]
        d = workloads.load(workload)
        pid = int(context.node_config["partition-id"])
        x, y = d.client_x[pid], d.client_y[pid]
        model = workloads.make_model(workload)
        model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
        loss = workloads.local_train(
            model, x, y, float(cfg["lr"]), int(cfg["batch-size"]),
            int(cfg["local-epochs"]), int(cfg["max-steps"]),
        )
        content = RecordDict(
            {
                "arrays": ArrayRecord(model.state_dict()),
                "metrics": MetricRecord({"train_loss": loss, "num-examples": len(y)}),
            }
        )
        return Message(content=content, reply_to=msg)

    stamps: list[float] = []

    def central(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        stamps.append(time.perf_counter())
        model = workloads.make_model(workload)
        model.load_state_dict(arrays.to_torch_state_dict())
        loss, acc = workloads.evaluate(model, data.test_x, data.test_y)
        return MetricRecord({"accuracy": acc, "loss": loss})

    server_app = ServerApp()
    took: dict[str, float] = {}

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        strategy = FedAvg(
            fraction_train=spec.clients_per_round / spec.num_clients,
            fraction_evaluate=0.0,
            min_train_nodes=spec.clients_per_round,
            min_available_nodes=spec.num_clients,
        )
        if greenfl:
            strategy = GreenflStrategy(strategy, fleet="builtin", out=out, overwrite=True)
        cfg = ConfigRecord(
            {"lr": spec.lr, "batch-size": spec.batch_size, "local-epochs": spec.local_epochs,
             "max-steps": spec.max_steps}
        )
        t = time.perf_counter()
        strategy.start(
            grid=grid,
            initial_arrays=ArrayRecord(workloads.make_model(workload).state_dict()),
            num_rounds=spec.rounds,
            train_config=cfg,
            evaluate_fn=central,
        )
        took["loop_s"] = time.perf_counter() - t

    run_simulation(
        server_app=server_app,
        client_app=client_app,
        num_supernodes=spec.num_clients,
        backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}},
    )
    rounds = [b - a for a, b in zip(stamps[1:], stamps[2:], strict=False)]
    return {"round_s": statistics.median(rounds), "loop_s": took["loop_s"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", nargs="+", default=["W1", "W3"])
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--child", nargs=2, metavar=("WORKLOAD", "ARM"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(one_run(args.child[0], args.child[1] == "greenfl", tmp + "/run")))
        return
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0"}
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    for w in args.workloads:
        runs: dict[str, list[dict[str, float]]] = {"plain": [], "greenfl": []}
        for i in range(args.pairs):
            order = ("plain", "greenfl") if i % 2 == 0 else ("greenfl", "plain")
            for arm in order:
                p = subprocess.run(
                    [sys.executable, __file__, "--child", w, arm],
                    env=env, capture_output=True, text=True, check=True,
                )
                got = json.loads(p.stdout.strip().splitlines()[-1])
                runs[arm].append(got)
                print(f"{w} pair {i + 1} {arm:8s} {got['round_s']:.3f} s/round, loop "
                      f"{got['loop_s']:.2f} s", flush=True)
        results[w] = runs
    summary = {}
    for w, runs in results.items():
        med = {
            arm: {k: statistics.median(r[k] for r in runs[arm]) for k in ("round_s", "loop_s")}
            for arm in runs
        }
        # pair by pair: each greenfl round over the plain one run beside it
        pair_ratios = [
            g["round_s"] / p["round_s"] for g, p in zip(runs["greenfl"], runs["plain"], strict=True)
        ]
        overhead = statistics.median(pair_ratios) - 1
        summary[w] = {**runs, "median": med, "pair_ratios": pair_ratios, "overhead": overhead}
        print(f"{w}: round plain {med['plain']['round_s']:.3f} s, greenfl "
              f"{med['greenfl']['round_s']:.3f} s; overhead {100 * overhead:+.1f}% (median of "
              f"pairs; target <= 3%); loop plain {med['plain']['loop_s']:.2f} s, greenfl "
              f"{med['greenfl']['loop_s']:.2f} s")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"measured_utc": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                 time.gmtime()),
                                   "pairs": args.pairs, "results": summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
