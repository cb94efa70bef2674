"""The workload both apps share: a greenfl config's dataset, partition and model, and
plain local SGD (the steps greenfl's own trainer takes: every batch of every epoch, capped
at train.max_local_steps)."""

from __future__ import annotations

import json
from typing import Any

import torch
from torch import nn

from greenfl.config.load import load_config
from greenfl.config.run import RunConfig
from greenfl.data.base import FederatedDataset
from greenfl.factories.data import build_model_for, dataset_for


def workload(run_config: dict[str, Any]) -> RunConfig:
    """The greenfl config the app's run config names (or the built-in quickstart), with
    the app's round settings: the same config ``greenfl run`` takes for the same work."""
    path = str(run_config.get("greenfl-config", "")) or None
    n = int(run_config.get("num-clients", 10))
    overrides = [
        f"seed={int(run_config.get('seed', 0))}",
        f"data.num_clients={n}",
        f"train.rounds={int(run_config.get('num-server-rounds', 5))}",
        f"train.local_epochs={int(run_config.get('local-epochs', 5))}",
        f"train.batch_size={int(run_config.get('batch-size', 8))}",
        f"train.lr={float(run_config.get('lr', 0.1))}",
        f"train.clients_per_round={max(1, int(n * float(run_config.get('fraction-train', 1.0))))}",
    ]
    # more greenfl config keys, "KEY=VALUE; KEY=VALUE" (e.g. "model.params.hidden=[256, 256]")
    extra = [a.strip() for a in str(run_config.get("greenfl-set", "")).split(";") if a.strip()]
    return load_config(path, overrides + extra)


_DATA: dict[str, FederatedDataset] = {}


def data(cfg: RunConfig) -> FederatedDataset:
    """The partitioned dataset, built once per process (per data config and seed)."""
    key = json.dumps({"data": cfg.to_dict()["data"], "seed": cfg.seed}, sort_keys=True)
    if key not in _DATA:
        _DATA[key] = dataset_for(cfg.data, cfg.seed)
    return _DATA[key]


def model(cfg: RunConfig) -> nn.Module:
    """The config's model, initialised from its seed (the same start as ``greenfl run``)."""
    torch.manual_seed(cfg.seed)
    return build_model_for(cfg, data(cfg))


def train(net: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: RunConfig) -> float:
    """Local SGD; returns the mean training loss of the last epoch."""
    t = cfg.train
    opt = torch.optim.SGD(net.parameters(), lr=t.lr, momentum=t.momentum)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(cfg.seed)
    steps, last = 0, float("nan")
    net.train()
    for _ in range(t.local_epochs):
        order = torch.randperm(len(y), generator=gen)
        total, count = 0.0, 0
        for i in range(0, len(y), t.batch_size):
            if t.max_local_steps and steps >= t.max_local_steps:
                break
            idx = order[i : i + t.batch_size]
            opt.zero_grad()
            loss = loss_fn(net(x[idx]), y[idx])
            loss.backward()
            opt.step()
            steps += 1
            total, count = total + float(loss.detach()) * len(idx), count + len(idx)
        last = total / count if count else last
    return last


def evaluate(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(accuracy, mean loss) on (x, y)."""
    net.eval()
    with torch.no_grad():
        out = net(x)
        loss = float(nn.functional.cross_entropy(out, y))
        acc = float((out.argmax(1) == y).float().mean())
    return acc, loss
