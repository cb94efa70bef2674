"""FedAvg in Flower's Simulation Runtime (Ray backend), one JSON result line at the end.

    bench/.venv-peers/bin/python bench/peers/flower_sim.py --workload W1

Flower's Message API as its current templates write it: a ``ClientApp`` whose ``train`` handler
loads the global ``ArrayRecord`` into a fresh model, trains on its partition
(``context.node_config["partition-id"]``) and replies with its weights and ``num-examples``;
a ``ServerApp`` running ``flwr.serverapp.strategy.FedAvg`` (``fraction_train = K / N``, no
federated evaluation) with a central ``evaluate_fn`` before training and after every round.
``flwr.simulation.run_simulation`` with ``num_supernodes = N`` and client resources of 1 CPU
(2 Ray actors on 2 cores). Each Ray actor builds the workload's data once (cached per process),
as a Flower app loads its partitions. torch threads: Flower/Ray defaults (Ray sets
OMP_NUM_THREADS=1 in its workers; the server process keeps PyTorch's default).
"""

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import logging  # noqa: E402
from importlib.metadata import version  # noqa: E402

import torch  # noqa: E402
from flwr.app import (  # noqa: E402
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.serverapp import Grid, ServerApp  # noqa: E402
from flwr.serverapp.strategy import FedAvg  # noqa: E402
from flwr.simulation import run_simulation  # noqa: E402

import workloads  # noqa: E402

client_app = ClientApp()


@client_app.train()
def train(msg: Message, context: Context) -> Message:
    cfg = msg.content["config"]
    name = str(cfg["workload"])
    data = workloads.load(name)
    pid = int(context.node_config["partition-id"])
    x, y = data.client_x[pid], data.client_y[pid]
    model = workloads.make_model(name)
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    loss = workloads.local_train(
        model,
        x,
        y,
        float(cfg["lr"]),
        int(cfg["batch-size"]),
        int(cfg["local-epochs"]),
        int(cfg["max-steps"]),
    )
    content = RecordDict(
        {
            "arrays": ArrayRecord(model.state_dict()),
            "metrics": MetricRecord({"train_loss": loss, "num-examples": len(y)}),
        }
    )
    return Message(content=content, reply_to=msg)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", choices=sorted(workloads.SPECS), required=True)
    ap.add_argument("--verbose", action="store_true", help="keep Flower's INFO logging")
    args = ap.parse_args()
    if not args.verbose:
        logging.getLogger("flwr").setLevel(logging.WARNING)

    monitor = workloads.Monitor().start()
    name = args.workload
    spec = workloads.SPECS[name]
    data = workloads.load(name)
    state: dict[str, object] = {"acc": [], "loop_s": 0.0}

    def central_evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        model = workloads.make_model(name)
        model.load_state_dict(arrays.to_torch_state_dict())
        loss, acc = workloads.evaluate(model, data.test_x, data.test_y)
        state["acc"].append(acc)
        return MetricRecord({"accuracy": acc, "loss": loss})

    server_app = ServerApp()

    @server_app.main()
    def server_main(grid: Grid, context: Context) -> None:
        strategy = FedAvg(
            fraction_train=spec.clients_per_round / spec.num_clients,
            fraction_evaluate=0.0,
            min_train_nodes=spec.clients_per_round,
            min_available_nodes=spec.num_clients,
        )
        train_cfg = ConfigRecord(
            {
                "workload": name,
                "lr": spec.lr,
                "batch-size": spec.batch_size,
                "local-epochs": spec.local_epochs,
                "max-steps": spec.max_steps,
            }
        )
        t = time.perf_counter()
        strategy.start(
            grid=grid,
            initial_arrays=ArrayRecord(workloads.make_model(name).state_dict()),
            num_rounds=spec.rounds,
            train_config=train_cfg,
            evaluate_fn=central_evaluate,
        )
        state["loop_s"] = time.perf_counter() - t

    run_simulation(
        server_app=server_app,
        client_app=client_app,
        num_supernodes=spec.num_clients,
        backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}},
    )
    accs = state["acc"]
    workloads.report(
        "flower",
        name,
        T0,
        float(state["loop_s"]),
        monitor,
        accs[-1],
        version=f"flwr {version('flwr')}, ray {version('ray')}, torch {torch.__version__}",
        accuracy_per_round=[round(a, 4) for a in accs],
    )


if __name__ == "__main__":
    main()
