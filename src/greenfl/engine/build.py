"""Wiring a RoundLoop from a RunConfig; the policies come from the composition root
(greenfl.factories)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from greenfl._version import __version__
from greenfl.accounting.sources import GridChoice, intensity_sources
from greenfl.clients.inprocess import InProcessTransport
from greenfl.clients.secagg_cost import SecAggCostStrategy, SecAggCostTransport
from greenfl.clients.trainer import ClientTrainer
from greenfl.clients.transport import ClientTransport
from greenfl.clients.validate import ValidatingTransport
from greenfl.config import RunConfig
from greenfl.core.errors import ConfigError, GreenflError
from greenfl.data.base import FederatedDataset
from greenfl.engine.loop import RoundLoop
from greenfl.engine.records import Callback
from greenfl.engine.resume import saved_state
from greenfl.engine.safety import (
    attacked_dataset,
    attacked_transport,
    attackers_of,
    refuse_attack_in_deployment,
    safety_probes,
)
from greenfl.engine.server_work import ServerWorkModel
from greenfl.engine.tracking import tracking_callbacks
from greenfl.factories import (
    build_model_for,
    codec_for,
    dataset_for,
    run_strategy_for,
    selector_for,
    trainer_for,
)
from greenfl.fleet.catalog import Fleet, load_fleet
from greenfl.fleet.population import Population
from greenfl.footprint.meters import best_meter
from greenfl.ledger.folder import claim_folder, replace_previous_run
from greenfl.ledger.writer import LedgerWriter
from greenfl.models import forward_flops_per_sample, training_flops_per_sample
from greenfl.scheduling.clock import SimClock


def build_loop(
    cfg: RunConfig,
    out_dir: str | Path | None = None,
    model: nn.Module | None = None,
    dataset: FederatedDataset | None = None,
    callbacks: Sequence[Callback] = (),
    transport: ClientTransport | None = None,
    overwrite: bool = False,
    resume: bool = False,
) -> RoundLoop:
    """A ready-to-run loop. ``model`` and ``dataset`` replace the configured ones (any
    torch.nn.Module works); ``transport`` replaces in-process clients (e.g. gRPC).
    An existing ledger in ``out_dir`` is an error unless ``overwrite``: no run is lost by
    accident. ``resume`` continues the run in ``out_dir`` from its last completed round."""
    lock = claim_folder(Path(out_dir)) if out_dir is not None else None
    try:
        parts = _open_ledger(cfg, out_dir, model, dataset, transport, overwrite, resume)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    if lock is not None:
        parts.ledger.on_close.append(lock.release)
    return _assemble(cfg, parts, callbacks, resume)


@dataclass
class _Parts:
    ledger: LedgerWriter
    model: nn.Module
    dataset: FederatedDataset
    fleet: Fleet
    population: Population
    transport: ClientTransport
    trainer: ClientTrainer | None
    server_work: ServerWorkModel | None
    trackers: list[Callback]
    malicious: np.ndarray  # the simulated attack's clients (none without one)


def _open_ledger(
    cfg: RunConfig,
    out_dir: str | Path | None,
    model: nn.Module | None,
    dataset: FederatedDataset | None,
    transport: ClientTransport | None,
    overwrite: bool,
    resume: bool,
) -> _Parts:
    """(run folder locked) Every input built and checked (data, model, fleet, its traces),
    then the ledger: an earlier run in the folder is replaced only after all of that."""
    trackers = tracking_callbacks(cfg.report)  # first: a missing library fails before any work
    dataset = dataset if dataset is not None else dataset_for(cfg.data, cfg.seed)
    malicious = attackers_of(cfg, dataset)
    if transport is None:
        dataset = attacked_dataset(cfg, dataset, malicious)
    else:
        refuse_attack_in_deployment(cfg)
    if model is None:
        model = build_model_for(cfg, dataset)
    fleet = load_fleet(cfg.fleet.catalog)
    grid = GridChoice(cfg.fleet.ci_mode, cfg.fleet.ci_constant_g_per_kwh)
    intensity_sources(fleet, grid, SimClock(cfg.fleet.start_time).start_utc)  # reads traces
    population = Population.assign(fleet, dataset.client_sizes(), cfg.seed)
    trainer: ClientTrainer | None = None
    server_work: ServerWorkModel | None = None
    if transport is None and cfg.engine.server_meter == "model":
        server_work = server_work_for(model, dataset, fleet)
    if transport is None:
        trainer = trainer_for(cfg, model)
        flops = training_flops_per_sample(
            model, dataset.input_shape, dataset.num_classes, cfg.train.batch_size
        )
        transport = InProcessTransport(
            model, dataset, trainer, codec_for(cfg.compression), flops, cfg.seed
        )
        transport = attacked_transport(cfg, transport, malicious)
        numel = sum(p.numel() for p in model.parameters())
        if cfg.secagg.enabled:  # its price, in every report (the sum is the plain one)
            sa = cfg.secagg
            transport = SecAggCostTransport(transport, numel, sa.neighbours, sa.threshold)
        transport = ValidatingTransport(transport, numel, cfg.deploy.max_update_norm)
    ledger_path = None
    if out_dir is not None:
        out = Path(out_dir)
        ledger_path = out / "ledger.sqlite"
        if resume:
            if not ledger_path.is_file():
                raise ConfigError(f"--resume: no ledger to resume at {ledger_path}")
        else:
            if ledger_path.exists() and not overwrite:
                raise GreenflError(
                    f"{out} already holds a ledger; choose another --out, or --force to replace it"
                )
            replace_previous_run(out)
    elif resume:
        raise ConfigError("resume needs an output folder holding the run's ledger")
    # A deployment hands every round over at once: its rounds are real clients' work, and
    # slow enough that batching buys nothing.
    ledger = LedgerWriter(
        ledger_path, batch_s=cfg.engine.ledger_batch_s if trainer is not None else 0.0
    )
    return _Parts(
        ledger, model, dataset, fleet, population, transport, trainer, server_work, trackers,
        malicious,
    )  # fmt: skip


def _assemble(
    cfg: RunConfig, parts: _Parts, callbacks: Sequence[Callback], resume: bool
) -> RoundLoop:
    ledger, trainer, fleet = parts.ledger, parts.trainer, parts.fleet
    state = saved_state(ledger) if resume else None
    if not resume:
        ledger.begin_run(cfg.to_dict(), fleet.to_dict(), __version__)
    if trainer is not None:  # which trainer engine.trainer = "auto" resolved to
        ledger.set_meta("trainer", trainer.name)
    if cfg.attack.name != "none":  # who lied: for analysis only, never for a strategy
        ledger.set_meta("malicious_clients", json.dumps(parts.malicious.tolist()))
    strategy = run_strategy_for(cfg)
    if cfg.secagg.enabled and trainer is not None:  # simulated: the server's share of it
        strategy = SecAggCostStrategy(strategy, cfg.secagg.neighbours, cfg.secagg.threshold)
    probes, guards = safety_probes(cfg, parts.model, parts.dataset, strategy)
    loop = RoundLoop(
        cfg,
        parts.model,
        parts.dataset,
        fleet,
        parts.population,
        strategy,
        selector_for(cfg),
        parts.transport,
        ledger,
        best_meter(),
        [*callbacks, *parts.trackers, *guards],
        checkpoint=cfg.engine.checkpoint,
        server_work=parts.server_work,
        probes=probes,
    )
    if state is not None:
        loop.restore(state)
    return loop


def server_work_for(model: nn.Module, dataset: FederatedDataset, fleet: Fleet) -> ServerWorkModel:
    """The server's counted work per round: aggregation over the model's parameters, and a
    forward pass over the central test set, at the fleet server's throughput."""
    _x, y = dataset.test_data()
    per_sample = forward_flops_per_sample(model, dataset.input_shape, dataset.num_classes)
    return ServerWorkModel(
        num_params=sum(p.numel() for p in model.parameters()),
        eval_flops=per_sample * len(y),
        flops_per_s=fleet.server.flops_per_s,
    )
