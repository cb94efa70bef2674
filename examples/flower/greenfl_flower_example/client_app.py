"""The ClientApp: plain Flower, plus greenfl's footprint mod."""

from __future__ import annotations

from typing import Any

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from greenfl.flower import footprint_mod
from greenfl_flower_example.task import data, evaluate, model, train, workload


def _client(msg: Message, context: Context) -> int:
    """The partition this node trains on: the fleet client the server bound it to
    (greenfl-client), else Flower's partition-id."""
    cfg = msg.content.config_records.get("config")
    if cfg is not None and "greenfl-client" in cfg:
        return int(cfg["greenfl-client"])
    return int(context.node_config["partition-id"])


def train_fn(msg: Message, context: Context, settings: dict[str, Any]) -> Message:
    cfg = workload(settings)
    net = model(cfg)
    net.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    x, y = data(cfg).client_data(_client(msg, context))
    loss = train(net, x, y, cfg)
    content = RecordDict(
        {
            "arrays": ArrayRecord(net.state_dict()),
            "metrics": MetricRecord({"train_loss": loss, "num-examples": len(y)}),
        }
    )
    return Message(content=content, reply_to=msg)


def evaluate_fn(msg: Message, context: Context, settings: dict[str, Any]) -> Message:
    cfg = workload(settings)
    net = model(cfg)
    net.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    x, y = data(cfg).client_test_data(_client(msg, context))
    acc, loss = evaluate(net, x, y)
    metrics = MetricRecord({"eval_acc": acc, "eval_loss": loss, "num-examples": len(y)})
    return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)


def make_app(overrides: dict[str, Any] | None = None) -> ClientApp:
    """The ClientApp, with greenfl's mod; ``overrides`` replace run-config values (for
    ``run_simulation``, which takes no run config)."""
    app = ClientApp(mods=[footprint_mod])

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        return train_fn(msg, context, {**context.run_config, **(overrides or {})})

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        return evaluate_fn(msg, context, {**context.run_config, **(overrides or {})})

    return app


app = make_app()
