"""The ServerApp: Flower's FedAvg, wrapped in GreenflStrategy."""

from __future__ import annotations

from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from greenfl.flower import GreenflStrategy
from greenfl_flower_example.task import data, evaluate, model, workload


def main(grid: Grid, context: Context, rc: dict[str, Any]) -> None:
    cfg = workload(rc)
    net = model(cfg)
    x_test, y_test = data(cfg).test_data()

    def central(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        net.load_state_dict(arrays.to_torch_state_dict())
        acc, loss = evaluate(net, x_test, y_test)
        return MetricRecord({"accuracy": acc, "loss": loss})

    n = cfg.data.num_clients
    inner = FedAvg(
        fraction_train=float(rc.get("fraction-train", 1.0)),
        fraction_evaluate=0.0,
        min_train_nodes=1,
        min_available_nodes=n,
    )
    strategy = GreenflStrategy(
        inner,
        fleet=str(rc.get("greenfl-fleet", "builtin")),
        out=str(rc.get("greenfl-out", "greenfl-flower-run")) or None,
        config=cfg,
        selector=str(rc.get("greenfl-selector", "")) or None,
        overwrite=True,
        # each node loads the partition of the fleet client it is bound to: the same
        # client, data and device as `greenfl run` pairs them (false: Flower's partition-id)
        tell_clients=bool(rc.get("greenfl-tell-clients", True)),
    )
    strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(net.state_dict()),
        num_rounds=cfg.train.rounds,
        train_config=ConfigRecord({"local-epochs": cfg.train.local_epochs}),
        evaluate_fn=central,
    )


def make_app(overrides: dict[str, Any] | None = None) -> ServerApp:
    """The ServerApp; ``overrides`` replace run-config values (for ``run_simulation``,
    which takes no run config)."""
    app = ServerApp()

    @app.main()
    def run(grid: Grid, context: Context) -> None:
        main(grid, context, {**context.run_config, **(overrides or {})})

    return app


app = make_app()
