"""Federated vs centralised: the footprint of training the same model on the same data in
the datacentre that hosts the FL server, after every client uploads its raw data once.

    train_s         = work_flops / server_flops_per_s
    server_energy_j = server power_w * train_s * pue          (fleet [server])
    server_carbon_g = server_energy_j at the server region's intensity over [0, train_s]
    upload (each client, once, over its own network, at the start):
      upload_s      = data_bytes * 8 / (up_mbps * 1e6)
      energy_j      = radio_power_w * upload_s + data_bytes/1e9 * network_kwh_per_gb * 3.6e6
      carbon_g      = energy_j at the client's region intensity + device embodied for upload_s

The work is, by default, the FLOPs the federated run spent on the updates it aggregated
(``same-work``: the same sample-epochs, on the server instead of the clients). With
``to-accuracy`` the model is really trained centrally, on the pooled data with the same
optimiser settings, until it reaches the federated run's final accuracy (or the target), and
the FLOPs of the epochs that took are counted. Both leave out the server's embodied carbon,
as the federated ledger does."""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from greenfl.accounting.entries import EntryTable
from greenfl.accounting.sources import GridChoice, intensity_sources, mean_intensity
from greenfl.analysis.centralised_result import CentralisedEstimate, save_estimate
from greenfl.analysis.sgd import sgd_epoch
from greenfl.config import RunConfig, build_config
from greenfl.core.errors import ConfigError, GreenflError
from greenfl.core.messages import samples_processed
from greenfl.core.params import get_flat
from greenfl.data.base import FederatedDataset
from greenfl.factories import build_model_for, dataset_for
from greenfl.fleet.catalog import Fleet
from greenfl.fleet.population import Population
from greenfl.fleet.profiles import DEFAULT_SERVER_FLOPS_PER_S  # the built-in server's
from greenfl.footprint.model import (
    comm_energy_j,
    embodied_carbon_g,
    operational_carbon_g,
    transfer_time_s,
)
from greenfl.ledger.schema import AGGREGATED_SQL
from greenfl.models.evaluate import evaluate
from greenfl.models.flops import training_flops_per_sample
from greenfl.scheduling.clock import SimClock

Work = Literal["same-work", "to-accuracy"]


def _grid(cfg: RunConfig) -> GridChoice:
    return GridChoice(cfg.fleet.ci_mode, cfg.fleet.ci_constant_g_per_kwh)


def sample_bytes(dataset: FederatedDataset) -> int:
    """Bytes of one training sample as the clients hold it (features + label tensors)."""
    for cid in range(dataset.num_clients):
        x, y = dataset.client_data(cid)
        if len(y):
            return int(x[0].numel() * x.element_size() + y.element_size())
    raise ConfigError("data: every client holds zero samples")


@dataclass(frozen=True)
class UploadCost:
    data_bytes: int
    energy_j: float
    operational_g: float
    embodied_g: float


def upload_cost(
    fleet: Fleet,
    population: Population,
    cfg: RunConfig,
    bytes_per_sample: int,
) -> UploadCost:
    """Every client sends its raw data once, over its own network, from the run's start."""
    entries = EntryTable.build(fleet)
    e = population.entry
    data_bytes = population.num_samples.astype(np.float64) * bytes_per_sample
    up_s = transfer_time_s(data_bytes, entries.up_mbps[e])
    energy = comm_energy_j(
        up_s, data_bytes, entries.radio_power_w[e], entries.network_kwh_per_gb[e]
    )
    sources = intensity_sources(fleet, _grid(cfg), SimClock(cfg.fleet.start_time).start_utc)
    ci = mean_intensity(sources, population.region, np.zeros_like(up_s), up_s)
    emb = embodied_carbon_g(
        up_s, entries.embodied_kg[e], entries.lifetime_years[e], entries.active_share[e]
    )
    return UploadCost(
        int(data_bytes.sum()),
        float(energy.sum()),
        float(operational_carbon_g(energy, ci).sum()),
        float(emb.sum()),
    )


def pooled(dataset: FederatedDataset) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*(dataset.client_data(c) for c in range(dataset.num_clients)), strict=True)
    return torch.cat(xs), torch.cat(ys)


def epochs_to_accuracy(
    cfg: RunConfig,
    model: nn.Module,
    dataset: FederatedDataset,
    target: float,
    max_epochs: int,
) -> tuple[float, float]:
    """Train centrally (same batch size, lr, momentum) until the test accuracy reaches
    ``target``, checking after every epoch; (epochs taken, accuracy reached). Epochs is
    ``max_epochs`` if it never gets there."""
    x, y = pooled(dataset)
    test = dataset.test_data()
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.train.lr, momentum=cfg.train.momentum)
    acc = 0.0
    for epoch in range(1, max_epochs + 1):
        sgd_epoch(model, opt, x, y, cfg.train.batch_size, gen)
        acc, _ = evaluate(model, get_flat(model), test)
        if acc >= target:
            return float(epoch), acc
    return float(max_epochs), acc


def estimate_centralised(
    cfg: RunConfig,
    fleet: Fleet,
    fl_work_flops: float | None = None,
    fl_final_accuracy: float | None = None,
    work: Work = "same-work",
    server_flops_per_s: float = DEFAULT_SERVER_FLOPS_PER_S,
    max_epochs: int = 200,
    dataset: FederatedDataset | None = None,
) -> CentralisedEstimate:
    """The centralised footprint. ``fl_work_flops``: FLOPs of the federated run's aggregated
    updates (from its ledger); without it, the work the config implies (rounds x clients per
    round x local epochs x mean client samples)."""
    if server_flops_per_s <= 0:
        raise ConfigError("--server-flops-per-s must be > 0")
    dataset = dataset if dataset is not None else dataset_for(cfg.data, cfg.seed)
    model = build_model_for(cfg, dataset)
    per_sample = training_flops_per_sample(
        model, dataset.input_shape, dataset.num_classes, cfg.train.batch_size
    )
    sizes = dataset.client_sizes()
    n_train = int(sizes.sum())
    assumptions = [
        f"server throughput {server_flops_per_s:.3g} FLOP/s (effective, fp32)",
        f"{per_sample:.4g} training FLOPs per sample (torch FlopCounterMode, forward+backward)",
        "raw data uploaded once, as the float32/int64 tensors the clients hold",
        "server embodied carbon left out, as in the federated ledger",
    ]
    reached = None
    if work == "to-accuracy":
        target = cfg.stop.target_accuracy or fl_final_accuracy
        if target is None:
            raise ConfigError(
                "to-accuracy needs stop.target_accuracy or a federated run (--run) to match"
            )
        epochs, reached = epochs_to_accuracy(cfg, model, dataset, target, max_epochs)
        flops = epochs * n_train * per_sample
        assumptions.insert(
            0,
            f"work: centralised SGD on the pooled data until accuracy {target:.4f} "
            f"({'reached' if reached >= target else 'not reached'} after {epochs:g} epochs)",
        )
    elif fl_work_flops is not None:
        flops = float(fl_work_flops)
        epochs = flops / (per_sample * n_train) if n_train else math.nan
        assumptions.insert(0, "work: the FLOPs of the federated run's aggregated updates")
    else:
        t = cfg.train
        per_client = samples_processed(sizes, t.local_epochs, t.batch_size, t.max_local_steps)
        flops = t.rounds * t.clients_per_round * float(per_client.mean()) * per_sample
        epochs = flops / (per_sample * n_train) if n_train else math.nan
        assumptions.insert(
            0,
            "work: rounds x clients_per_round x mean samples a client processes per round "
            "(local_epochs, capped by max_local_steps)",
        )
    train_s = flops / server_flops_per_s
    srv = fleet.server
    energy = srv.power_w * train_s * srv.pue
    sources = intensity_sources(fleet, _grid(cfg), SimClock(cfg.fleet.start_time).start_utc)
    ci = float(
        sources[fleet.region_index(srv.region)].mean(np.array([0.0]), np.array([train_s]))[0]
    )
    population = Population.assign(fleet, sizes, cfg.seed)
    up = upload_cost(fleet, population, cfg, sample_bytes(dataset))
    return CentralisedEstimate(
        work=work,
        work_flops=flops,
        epochs=epochs,
        server_flops_per_s=server_flops_per_s,
        train_s=train_s,
        server_energy_j=energy,
        server_ci_g_per_kwh=ci,
        server_carbon_g=float(operational_carbon_g(energy, ci)),
        data_bytes=up.data_bytes,
        upload_energy_j=up.energy_j,
        upload_operational_g=up.operational_g,
        upload_embodied_g=up.embodied_g,
        reached_accuracy=reached,
        assumptions=assumptions,
    )


def fl_work_flops(conn: sqlite3.Connection) -> float:
    """FLOPs of the updates a federated run aggregated, from its ledger."""
    row = conn.execute(
        "SELECT COALESCE(SUM(flops), 0) FROM client_rounds WHERE " + AGGREGATED_SQL
    ).fetchone()
    return float(row[0])


def estimate_for_run(
    run_dir: Path,
    work: Work = "same-work",
    server_flops_per_s: float = DEFAULT_SERVER_FLOPS_PER_S,
    max_epochs: int = 200,
) -> CentralisedEstimate:
    """The centralised estimate beside the run in ``run_dir``: its config, fleet, the FLOPs
    of its aggregated updates and its final accuracy, all read from its ledger."""
    from greenfl.fleet.catalog import parse_fleet
    from greenfl.ledger.summary import summarize

    path = Path(run_dir) / "ledger.sqlite"
    if not path.is_file():
        raise GreenflError(f"no ledger at {path}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        config_json, fleet_json = conn.execute(
            "SELECT config_json, fleet_json FROM runs WHERE run_id = 1"
        ).fetchone()
        work_flops = fl_work_flops(conn)
        final_accuracy = summarize(conn, None, 0.0)["final_accuracy"]
    except (sqlite3.DatabaseError, TypeError) as exc:
        raise GreenflError(f"{path}: not a greenfl ledger ({exc})") from None
    finally:
        conn.close()
    fleet = json.loads(fleet_json)
    raw = {k: v for k, v in fleet.items() if k != "path"}
    return estimate_centralised(
        build_config(json.loads(config_json)),
        parse_fleet(raw, str(fleet.get("path", "ledger fleet_json"))),
        fl_work_flops=work_flops,
        fl_final_accuracy=final_accuracy,
        work=work,
        server_flops_per_s=server_flops_per_s,
        max_epochs=max_epochs,
    )


def write_estimate_for_run(run_dir: Path) -> Path:
    """centralised.json in ``run_dir`` (same-work): what the run's report shows."""
    return save_estimate(Path(run_dir), estimate_for_run(Path(run_dir)))
