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
the whole loop's seconds.

Flower's simulation engine polls for replies every 0.1 s, so a round's wall time moves in
steps that dwarf a few milliseconds of work: side-by-side medians swing by +-20% between
batches of identical runs. The overhead is therefore also counted directly, in the same
runs: the server's time inside the wrapper (its methods' time less the inner strategy's
and the app's evaluation's), and each ClientApp call's time under the mod against the same
call without it (the workload's own clients trained in this process, both ways, paired),
summed over a round's clients and divided over the 2 Ray actors that run them in parallel,
over the plain arm's median round. Results: bench/results/flower_overhead.json."""

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
    from greenfl.flower import strategy as gs

    own = {"s": 0.0}  # the wrapper's methods (the inner strategy's and the app's inside)
    inner_s = {"s": 0.0}  # the inner strategy's methods and the app's evaluation
    once = {"s": 0.0}  # binding the nodes and opening the ledger; the summary at the end

    def clock(fn, bucket):
        def timed(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                bucket["s"] += time.perf_counter() - t
        return timed

    for name in ("configure_train", "aggregate_train", "configure_evaluate",
                 "aggregate_evaluate"):
        setattr(gs.GreenflStrategy, name, clock(getattr(gs.GreenflStrategy, name), own))
    finish_s = {"s": 0.0}
    gs.FlowerBook.finish = clock(clock(gs.FlowerBook.finish, finish_s), once)
    gs.FlowerBook.bind = clock(gs.FlowerBook.bind, once)
    counted = gs.GreenflStrategy._counted

    def timed_counted(self, fn):  # the central evaluation's wrapper, timed per call
        wrapped = counted(self, fn)
        return None if wrapped is None else clock(wrapped, own)

    gs.GreenflStrategy._counted = timed_counted

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
        t = time.perf_counter()
        model = workloads.make_model(workload)
        model.load_state_dict(arrays.to_torch_state_dict())
        loss, acc = workloads.evaluate(model, data.test_x, data.test_y)
        inner_s["s"] += time.perf_counter() - t  # the app's own work, not the wrapper's
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
            for name in ("configure_train", "aggregate_train", "configure_evaluate",
                         "aggregate_evaluate"):
                setattr(strategy, name, clock(getattr(strategy, name), inner_s))
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
    out_d = {"round_s": statistics.median(rounds), "loop_s": took["loop_s"]}
    if greenfl:
        # finish runs outside the wrapper's methods (in start), bind inside configure_train
        out_d["wrapper_server_s"] = own["s"] - inner_s["s"] - (once["s"] - finish_s["s"])
        out_d["wrapper_once_s"] = once["s"]
    return out_d


def mod_cost_s(workload: str, calls: int = 40) -> dict[str, float]:
    """Seconds a ClientApp call of ``workload`` takes with the mod's work (the layer
    counter around the call, the record) and without, paired call by call, median."""
    sys.path.insert(0, str(HERE / "peers"))
    import torch
    import workloads

    from greenfl.flower.record import Footprint
    from greenfl.models.flop_hooks import LayerFlopCounter

    torch.set_num_threads(1)  # as in a Ray actor (OMP_NUM_THREADS=1)
    spec, d = workloads.SPECS[workload], workloads.load(workload)

    def call(pid: int) -> None:
        model = workloads.make_model(workload)
        workloads.local_train(model, d.client_x[pid], d.client_y[pid], spec.lr,
                              spec.batch_size, spec.local_epochs, spec.max_steps)

    plain, modded = [], []
    for i in range(calls):
        pid = i % spec.num_clients
        t = time.perf_counter()
        call(pid)
        plain.append(time.perf_counter() - t)
        t = time.perf_counter()
        with LayerFlopCounter() as c:
            call(pid)
        Footprint(float(c.flops), 0.0, None, True).to_record()
        modded.append(time.perf_counter() - t)
    extra = statistics.median(m - p for m, p in zip(modded, plain, strict=True))
    return {"plain_call_s": statistics.median(plain), "mod_extra_s": extra}


def _clients_per_round(workload: str) -> int:
    sys.path.insert(0, str(HERE / "peers"))
    import workloads

    return workloads.SPECS[workload].clients_per_round


def _rounds(workload: str) -> int:
    sys.path.insert(0, str(HERE / "peers"))
    import workloads

    return workloads.SPECS[workload].rounds


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
        mod = mod_cost_s(w)
        spec_clients = _clients_per_round(w)
        med = {
            arm: {k: statistics.median(r[k] for r in runs[arm]) for k in ("round_s", "loop_s")}
            for arm in runs
        }
        # pair by pair: each greenfl round over the plain one run beside it
        pair_ratios = [
            g["round_s"] / p["round_s"] for g, p in zip(runs["greenfl"], runs["plain"], strict=True)
        ]
        overhead = statistics.median(pair_ratios) - 1
        rounds = _rounds(w)
        server_per_round = statistics.median(
            r["wrapper_server_s"] for r in runs["greenfl"]) / rounds
        once_s = statistics.median(r["wrapper_once_s"] for r in runs["greenfl"])
        client_per_round = mod["mod_extra_s"] * spec_clients / 2  # 2 actors in parallel
        counted = (server_per_round + client_per_round) / med["plain"]["round_s"]
        summary[w] = {**runs, "median": med, "pair_ratios": pair_ratios,
                      "overhead_side_by_side": overhead, "mod": mod,
                      "wrapper_server_s_per_round": server_per_round,
                      "mod_client_s_per_round": client_per_round, "overhead_counted": counted,
                      "wrapper_once_s": once_s}
        print(f"{w}: round plain {med['plain']['round_s']:.3f} s, greenfl "
              f"{med['greenfl']['round_s']:.3f} s, side by side {100 * overhead:+.1f}% "
              f"(median of pairs); counted: wrapper {1e3 * server_per_round:.1f} ms + mod "
              f"{1e3 * client_per_round:.1f} ms a round = {100 * counted:.2f}% of the plain "
              f"round (target <= 3%), and {once_s:.2f} s once (nodes bound, ledger, summary); "
              f"loop plain {med['plain']['loop_s']:.2f} s, greenfl "
              f"{med['greenfl']['loop_s']:.2f} s")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"measured_utc": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                 time.gmtime()),
                                   "pairs": args.pairs, "results": summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
