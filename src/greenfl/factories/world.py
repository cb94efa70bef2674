"""The run's world and its machinery from the config: the engine's narrow settings, the
fleet's population and grid intensity, the priced round (costs, execution targets), the
carbon-aware wait, the trainer and the server's counted work."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch
from torch import nn

from greenfl.accounting.entries import EntryTable, FootprintChoices
from greenfl.accounting.sources import GridChoice, intensity_sources
from greenfl.accounting.targets import TargetTable
from greenfl.clients.trainer import ClientTrainer
from greenfl.compression.base import Codec
from greenfl.config import RunConfig
from greenfl.core.errors import ConfigError
from greenfl.core.params import get_flat
from greenfl.data.base import FederatedDataset
from greenfl.engine.costs import CostModel
from greenfl.engine.server_work import ServerWorkModel
from greenfl.engine.settings import (
    AsyncRules,
    EngineSettings,
    RoundRules,
    StopRules,
    WorldRules,
)
from greenfl.engine.waiting import CarbonWait
from greenfl.fleet.catalog import Fleet, load_fleet
from greenfl.fleet.eligibility import for_eligibility
from greenfl.fleet.population import Population
from greenfl.footprint.forecast import PersistenceForecast, ProviderForecast
from greenfl.footprint.intensity import RegionalIntensity
from greenfl.grid.live import LiveIntensity, live_sources
from greenfl.models.flops import forward_flops_per_sample
from greenfl.scheduling.carbon import CarbonAwareScheduler
from greenfl.scheduling.phases import timing_for
from greenfl.submodel.policy import WidthPlan


def engine_settings(cfg: RunConfig, model: nn.Module) -> EngineSettings:
    t, dp, f = cfg.train, cfg.privacy, cfg.fleet
    local = dp.mode == "local"  # DP-SGD on every client: sample-level privacy
    return EngineSettings(
        seed=cfg.seed,
        start_utc=f.start_time,
        round=RoundRules(
            clients_per_round=t.clients_per_round,
            local_epochs=t.local_epochs,
            batch_size=t.batch_size,
            lr=t.lr,
            momentum=t.momentum,
            max_local_steps=t.max_local_steps,
            dp_noise_multiplier=dp.noise_multiplier if local else 0.0,
            dp_max_grad_norm=dp.clip_norm if local else 0.0,
        ),
        world=WorldRules(
            availability=availability_for(cfg),
            over_selection=f.over_selection,
            deadline_s=f.deadline_s,
            dropout_prob=f.dropout_prob,
            aggregate_partial=f.partial_work == "aggregate",
            timing=timing_for(
                f.eligibility,
                f.checkin_window_s,
                f.checkin_interval_s,
                f.selection_timeout_s,
                f.configuration_s,
            ),
        ),
        stop=StopRules(t.rounds, cfg.stop.target_accuracy, cfg.stop.carbon_budget_g),
        accounting=cfg.engine.accounting,
        checkpoint=cfg.engine.checkpoint,
        threads=threads_for(cfg, model),
        asynchronous=async_rules(cfg),
    )


def async_rules(cfg: RunConfig) -> AsyncRules | None:
    """The async loop's rules, or None for synchronous rounds."""
    if cfg.engine.mode != "async":
        return None
    a = cfg.async_
    default_k = 1 if cfg.strategy.name == "fedasync" else 10
    return AsyncRules(
        concurrency=a.concurrency,
        buffer_size=a.buffer_size if a.buffer_size is not None else default_k,
        staleness=a.staleness,
        staleness_a=a.staleness_a,
        staleness_b=a.staleness_b,
        carbon_aware=a.carbon_aware,
        carbon_slack_s=a.carbon_slack_s,
        carbon_tolerance=a.carbon_tolerance,
        carbon_quantile=a.carbon_quantile,
        min_concurrency_share=a.min_concurrency_share,
        checkin_interval_s=a.checkin_interval_s,
        wake_s=a.wake_s,
        max_candidates=a.max_candidates,
    )


# Above this, a client's own forward and backward are big enough to split across cores.
SMALL_MODEL_PARAMS = 1_000_000


def threads_for(cfg: RunConfig, model: nn.Module) -> int:
    """engine.threads, with "auto" resolved by the model's size (the config's reference
    gives the rule). Deterministic for a config and machine: the thread count can change
    float rounding, so it never follows the machine's momentary load."""
    if cfg.engine.threads != "auto":
        return int(cfg.engine.threads)
    if sum(p.numel() for p in model.parameters()) <= SMALL_MODEL_PARAMS:
        return 1
    return max(1, min(usable_cores(), 4))


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def availability_for(cfg: RunConfig) -> str:
    """Who may be picked at an hour: the eligibility schedules under production, else
    ``fleet.availability``."""
    return "production" if cfg.fleet.eligibility == "production" else cfg.fleet.availability


def fleet_for(cfg: RunConfig) -> Fleet:
    """The configured fleet as its eligibility sees it (production: metered entries on
    their home network)."""
    return for_eligibility(load_fleet(cfg.fleet.catalog), cfg.fleet.eligibility)


def footprint_choices(cfg: RunConfig) -> FootprintChoices:
    return FootprintChoices(
        cfg.fleet.network_energy, cfg.fleet.embodied_allocation, cfg.train.precision
    )


def forecast_for(cfg: RunConfig, sources: RegionalIntensity) -> PersistenceForecast:
    """What the planners see of the grid: a persistence forecast of ``sources``. A carbon
    scheduler that looks further ahead than the forecast's lag would plan on the real
    curve: refused."""
    lag_h = cfg.fleet.forecast_lag_h
    sched = cfg.scheduling
    if sched.name == "carbon":
        slack_s = float(sched.params.get("slack_s", 3600.0))
        if slack_s > lag_h * 3600:
            raise ConfigError(
                f"scheduling.params.slack_s = {slack_s:g} s looks further ahead than the "
                f"persistence forecast (fleet.forecast_lag_h = {lag_h:g} h): lower the slack "
                "or raise the lag"
            )
    a = cfg.async_
    if cfg.engine.mode == "async" and a.carbon_aware and a.carbon_slack_s > lag_h * 3600:
        raise ConfigError(
            f"async.carbon_slack_s = {a.carbon_slack_s:g} s looks further ahead than the "
            f"persistence forecast (fleet.forecast_lag_h = {lag_h:g} h): lower the slack or "
            "raise the lag"
        )
    if isinstance(sources, LiveIntensity):
        # the provider's forecast where it has one: planners never see recorded history
        # ahead of time (persistence covers the hours before the fetch)
        return ProviderForecast(sources, lag_h, sources.forecast_issued_s(cfg.fleet.start_time))
    return PersistenceForecast(sources, lag_h)


def grid_for(cfg: RunConfig) -> GridChoice:
    return GridChoice(cfg.fleet.ci_mode, cfg.fleet.ci_constant_g_per_kwh)


def sources_for(
    cfg: RunConfig, fleet: Fleet, regions: Sequence[str] | None = None
) -> RegionalIntensity:
    """One carbon-intensity source per region (reads every trace: a missing one fails
    before any work). Under a live ``fleet.ci_source`` the named ``regions`` (all where
    none are named) get the provider's curve; a constant intensity still wins."""
    f = cfg.fleet
    if f.ci_source == "builtin" or f.ci_constant_g_per_kwh is not None:
        return intensity_sources(fleet, grid_for(cfg), f.start_time)
    names = fleet.region_names if regions is None else regions
    return live_sources(fleet, grid_for(cfg), f.start_time, f.ci_source, names, f.forecast_lag_h)


def codec_bytes(codec: Codec, model: nn.Module) -> tuple[int, int]:
    """(bytes_up, bytes_down) a round is expected to move per client: ``codec``'s payload
    for a model-sized update (a fresh codec: no client's error feedback is touched), and
    the float32 model."""
    n = get_flat(model).numel()
    probe = torch.randn(n, generator=torch.Generator().manual_seed(0)) * 1e-3
    return len(codec.encode(probe, 0, torch.Generator()).payload), 4 * n


def cost_model(
    cfg: RunConfig,
    population: Population,
    sources: RegionalIntensity,
    flops_per_sample: float,
    bytes_up_down: tuple[int, int],
    submodel: WidthPlan | None = None,
) -> CostModel:
    fleet = population.fleet
    policy = cfg.adapt.target
    choices = footprint_choices(cfg)
    targets = TargetTable.build(fleet, choices) if policy != "entry" else None
    return CostModel(
        population,
        EntryTable.build(fleet, choices),
        targets,
        policy,
        forecast_for(cfg, sources),  # planning never sees the real curve
        flops_per_sample,
        *bytes_up_down,
        batch_size=cfg.train.batch_size,
        max_steps=cfg.train.max_local_steps,
        submodel=submodel,
    )


def waiting_for(
    cfg: RunConfig,
    scheduler: CarbonAwareScheduler | None,
    costs: CostModel,
    sources: RegionalIntensity,
    cost_aware: bool,
) -> CarbonWait | None:
    if scheduler is None:
        return None
    return CarbonWait(
        scheduler,
        costs,
        costs.population,
        forecast_for(cfg, sources),
        cfg.fleet.start_time,
        availability_for(cfg),
        cost_aware,
    )


def trainer_for(cfg: RunConfig, model: nn.Module) -> ClientTrainer:
    if cfg.engine.backend == "ray":
        from greenfl.clients.ray_trainer import RayTrainer

        return RayTrainer(cfg.engine.ray_address, threads_for(cfg, model))
    from greenfl.clients.vectorised import auto_trainer

    return auto_trainer(cfg.engine.trainer, model, cfg.train.clients_per_round)


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


def largest_cohort(cfg: RunConfig) -> int:
    """The most clients a round may ask: the largest cohort (adapt arms included), with
    over-selection."""
    cohort = max([cfg.train.clients_per_round, *cfg.adapt.clients_per_round])
    return math.ceil(cohort * (1 + cfg.fleet.over_selection))
