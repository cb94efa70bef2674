"""The composition root's one pass: a RunConfig (and any ready objects the caller hands
over) in, the run's parts out, built once and frozen, then the ledger. Everything a run
needs is built and checked (data, model, fleet, traces, policies) before the ledger of an
earlier run in the folder is replaced, so a mistake never costs a record."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from greenfl._version import __version__
from greenfl.accounting.curves import used_regions
from greenfl.clients.inprocess import InProcessTransport
from greenfl.clients.transport import ClientTransport, Task
from greenfl.clients.validate import ValidatingTransport
from greenfl.compression.base import Codec
from greenfl.config import RunConfig
from greenfl.core.errors import ConfigError, GreenflError
from greenfl.core.messages import ClientReport
from greenfl.data.base import FederatedDataset
from greenfl.engine.adaptation import RoundParams
from greenfl.engine.async_loop import AsyncLoop, FlowFactory
from greenfl.engine.client_eval import ClientEvaluator
from greenfl.engine.costs import CostModel
from greenfl.engine.loop import RoundLoop
from greenfl.engine.observers import Callback, CallbackObserver, RoundObserver
from greenfl.engine.outcome import SummaryFacts
from greenfl.engine.parts import RunParts
from greenfl.engine.resume import saved_state
from greenfl.engine.tracking import MlflowLogger, TensorBoardLogger
from greenfl.factories.data import (
    apply_region_skew,
    build_model_for,
    check_given_dataset,
    dataset_for,
)
from greenfl.factories.policies import (
    adapter_for,
    codec_for,
    dp_wrapped,
    policy_record,
    run_strategy_for,
    scheduler_for,
    selector_for,
)
from greenfl.factories.safety import (
    attacked_dataset,
    attacked_transport,
    attackers_of,
    refuse_attack_in_deployment,
    safety_observers,
    secagg_priced,
)
from greenfl.factories.sparsity import sparse_trainer, sparse_training_for
from greenfl.factories.submodel import WidthAccuracy, refuse_submodel_given, submodels_for
from greenfl.factories.world import (
    codec_bytes,
    cost_model,
    engine_settings,
    fleet_for,
    forecast_for,
    grid_for,
    server_work_for,
    sources_for,
    trainer_for,
    waiting_for,
)
from greenfl.fleet.population import Population
from greenfl.footprint.meters import best_meter
from greenfl.grid.live import LiveIntensity
from greenfl.ledger.folder import claim_folder, replace_previous_run
from greenfl.ledger.meta_keys import CI_SOURCES_KEY
from greenfl.ledger.writer import LedgerWriter
from greenfl.models.flops import training_flops_per_sample
from greenfl.selection.base import ClientSelector
from greenfl.sparse.strategy import MaskedStrategy
from greenfl.strategy.base import Strategy


@dataclass(frozen=True)
class Given:
    """Ready objects a caller hands the run in place of the configured ones."""

    model: nn.Module | None = None
    dataset: FederatedDataset | None = None
    strategy: Strategy | None = None
    selector: ClientSelector | None = None
    codec: Codec | None = None
    transport: ClientTransport | None = None  # real clients (a deployment)
    observers: Sequence[RoundObserver] = ()


def build_loop(
    cfg: RunConfig,
    out_dir: str | Path | None = None,
    model: nn.Module | None = None,
    dataset: FederatedDataset | None = None,
    callbacks: Sequence[Callback] = (),
    transport: ClientTransport | None = None,
    overwrite: bool = False,
    resume: bool = False,
    *,
    strategy: Strategy | None = None,
    selector: ClientSelector | None = None,
    codec: Codec | None = None,
    observers: Sequence[RoundObserver] = (),
    flow_factory: FlowFactory | None = None,
) -> RoundLoop:
    """A ready-to-run loop. Each object given replaces the configured one (any
    torch.nn.Module, any FederatedDataset, any strategy, selector or codec); ``transport``
    replaces in-process clients (e.g. gRPC). An existing ledger in ``out_dir`` is an error
    unless ``overwrite``: no run is lost by accident. ``resume`` continues the run in
    ``out_dir`` from its last completed round. ``flow_factory``: an async run's source of
    updates in place of the simulated flow (a deployment's live one)."""
    watchers = [*observers, *(CallbackObserver(cb) for cb in callbacks)]
    given = Given(model, dataset, strategy, selector, codec, transport, tuple(watchers))
    lock = claim_folder(Path(out_dir)) if out_dir is not None else None
    try:
        parts = compose(cfg, out_dir, given, overwrite, resume)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    if lock is not None:
        parts.ledger.on_close.append(lock.release)
    if parts.settings.asynchronous is not None:
        loop: RoundLoop = AsyncLoop(parts, flow_factory)
    else:
        loop = RoundLoop(parts)
    if resume:
        state = saved_state(parts.ledger)
        if state is not None:
            loop.restore(state)
    return loop


def compose(
    cfg: RunConfig,
    out_dir: str | Path | None,
    given: Given = Given(),
    overwrite: bool = False,
    resume: bool = False,
) -> RunParts:
    """(run folder locked) The run's parts, built once; the ledger last."""
    trackers = _trackers(cfg)  # first: a missing library fails before any work
    deployed = given.transport is not None
    dataset = given.dataset if given.dataset is not None else dataset_for(cfg.data, cfg.seed)
    if given.dataset is not None:
        check_given_dataset(cfg, dataset)
    malicious = attackers_of(cfg, dataset.num_clients)
    if deployed:
        refuse_attack_in_deployment(cfg)
    else:
        dataset = attacked_dataset(cfg, dataset, malicious)
    model = given.model if given.model is not None else build_model_for(cfg, dataset)
    settings = engine_settings(cfg, model)
    fleet = fleet_for(cfg)
    population = Population.assign(fleet, dataset.client_sizes(), cfg.seed)
    # a live ci_source fetches only the regions that hold clients, and the server's
    sources = sources_for(cfg, fleet, used_regions(population))
    # A region's clients see its own data distribution (data.region_skew; 0: unchanged).
    dataset = apply_region_skew(cfg, dataset, population)
    refuse_submodel_given(cfg, given.strategy is not None)
    strategy = _strategy(cfg, given.strategy)
    selector = given.selector if given.selector is not None else selector_for(cfg)
    codec = given.codec if given.codec is not None else codec_for(cfg.compression)
    flops = training_flops_per_sample(
        model, dataset.input_shape, dataset.num_classes, cfg.train.batch_size
    )
    subs = submodels_for(cfg, model, dataset, codec, flops)
    if subs is not None:
        strategy = subs.strategy  # each coordinate averaged over the clients that hold it
    sparse = sparse_training_for(cfg, model, dataset, population.size, codec, flops, deployed)
    if sparse is not None:
        strategy = MaskedStrategy(strategy, sparse)  # the server keeps and applies the mask
    # a copy to price a model-sized update: no client's error feedback is touched
    costs = cost_model(
        cfg,
        population,
        sources,
        flops,
        codec_bytes(copy.deepcopy(codec), model),
        submodel=subs.plan if subs is not None else None,
    )
    costs.sparse = sparse  # estimates price the kept values and the mask
    numel = sum(p.numel() for p in model.parameters())
    trainer = None
    if given.transport is not None:
        transport = given.transport
    else:
        trainer = trainer_for(cfg, model)
        if sparse is not None:
            trainer = sparse_trainer(sparse, trainer)
        inproc = InProcessTransport(
            model,
            dataset,
            trainer,
            codec,
            flops,
            cfg.seed,
            finish_time=_finish_time(costs),
            widths=subs.models if subs is not None else None,
            sparse=sparse,
        )
        transport, strategy = secagg_priced(
            cfg, attacked_transport(cfg, inproc, malicious), strategy, numel
        )
        transport = ValidatingTransport(
            transport,
            numel,
            cfg.deploy.max_update_norm,
            slice_numel=subs.slice_numel if subs is not None else None,
        )
    server_work = None
    if not deployed and cfg.engine.server_meter == "model":
        server_work = server_work_for(model, dataset, fleet)
    e = cfg.eval
    ledger = _open_ledger(cfg, out_dir, overwrite, resume, deployed)
    parts = RunParts(
        settings=settings,
        model=model,
        dataset=dataset,
        fleet=fleet,
        population=population,
        grid=grid_for(cfg),
        sources=sources,
        strategy=strategy,
        selector=selector,
        transport=transport,
        ledger=ledger,
        costs=costs,
        round_params=RoundParams(settings.round, adapter_for(cfg.adapt, cfg.train)),
        waiting=waiting_for(
            cfg, scheduler_for(cfg.scheduling), costs, sources, selector.needs_estimates
        ),
        server_work=server_work,
        meter=best_meter(),
        client_eval=ClientEvaluator(dataset, model, e.every, e.clients, cfg.seed, e.max_samples),
        # The run's own observers first: their state is in every snapshot, in this order.
        observers=(
            *safety_observers(cfg, model, dataset, strategy),
            *([WidthAccuracy(subs.models, dataset)] if subs is not None else []),
            *trackers,
            *given.observers,
        ),
        forecast=forecast_for(cfg, sources) if cfg.async_.carbon_aware else None,
        summary=SummaryFacts(
            cfg.stop.target_accuracy,
            cfg.privacy.delta if cfg.privacy.mode != "none" else None,
            cfg.attack.name,
            cfg.attack.fraction,
            submodel=cfg.submodel.name,
        ),
    )
    if not resume:
        ledger.begin_run(cfg.to_dict(), fleet.to_dict(), __version__)
        ledger.set_meta("policies", json.dumps(_policies(cfg, given)))
    if trainer is not None:  # which trainer engine.trainer = "auto" resolved to
        ledger.set_meta("trainer", trainer.name)
    ledger.set_meta("threads", str(settings.threads))  # float rounding can depend on it
    if isinstance(sources, LiveIntensity):  # which provider and signal each region used
        ledger.set_meta(CI_SOURCES_KEY, json.dumps(sources.provenance))
    if cfg.attack.name != "none":  # who lied: for analysis only, never for a strategy
        ledger.set_meta("malicious_clients", json.dumps(malicious.tolist()))
    return parts


def _strategy(cfg: RunConfig, given: Strategy | None) -> Strategy:
    """The configured strategy (checked, DP-wrapped), or the given one in its DP wrapper."""
    return run_strategy_for(cfg) if given is None else dp_wrapped(cfg, given)


def _finish_time(costs: CostModel) -> Callable[[Task, ClientReport], float]:
    """When a simulated client's report arrives: its dispatch plus its modelled download,
    training and upload, on its population entry's profile."""

    def finish(task: Task, report: ClientReport) -> float:
        return task.start_s + costs.duration_s(task.client_id, report)

    return finish


def _trackers(cfg: RunConfig) -> list[RoundObserver]:
    """The loggers the config asks for (none by default)."""
    r = cfg.report
    out: list[RoundObserver] = []
    if r.tensorboard_dir is not None:
        out.append(TensorBoardLogger(r.tensorboard_dir))
    if r.mlflow:
        out.append(MlflowLogger(r.mlflow_experiment, r.mlflow_tracking_uri, cfg.to_dict()))
    return out


def _policies(cfg: RunConfig, given: Given) -> dict[str, Any]:
    """What the ledger records of the run's policies: each configured one with every
    parameter it ran with, or the type of an object handed over."""
    record = policy_record(cfg)
    for key, obj in (
        ("strategy", given.strategy),
        ("selection", given.selector),
        ("compression", given.codec),
    ):
        if obj is not None:
            record[key] = {"object": f"{type(obj).__module__}.{type(obj).__qualname__}"}
    return record


def _open_ledger(
    cfg: RunConfig, out_dir: str | Path | None, overwrite: bool, resume: bool, deployed: bool
) -> LedgerWriter:
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
    return LedgerWriter(ledger_path, batch_s=0.0 if deployed else cfg.engine.ledger_batch_s)
