"""Policies from the config, each by its registry name and its own validated params, with
the run's facts filled in where a policy's params leave them to the run."""

from __future__ import annotations

import math
from typing import Any

from greenfl import adapt, compression, scheduling, selection, strategy
from greenfl.adapt.bandit import Bandit, make_arms
from greenfl.compression.base import Codec
from greenfl.config import AdaptConfig, CompressionConfig, RunConfig, SchedulingConfig, TrainConfig
from greenfl.core.errors import ConfigError
from greenfl.core.registry import RunFacts, as_dict, bind_run, build, parse_params
from greenfl.privacy import DPFedAvg
from greenfl.scheduling.carbon import CarbonAwareScheduler
from greenfl.selection.base import ClientSelector
from greenfl.selection.fairness import FairnessGuard
from greenfl.strategy.base import Strategy
from greenfl.strategy.tolerance import RobustStrategy, check_tolerance


def run_facts(run: RunConfig) -> RunFacts:
    """What policies may take from the run (greenfl.core.registry.RunFacts)."""
    t = run.train
    return RunFacts(
        seed=run.seed,
        local_epochs=t.local_epochs,
        clients_per_round=t.clients_per_round,
        window_s=run.fleet.deadline_s,
        byzantine=math.ceil(run.attack.fraction * t.clients_per_round - 1e-9),
    )


def codec_for(cfg: CompressionConfig) -> Codec:
    """A fresh codec (stateful ones start with no residuals)."""
    return build(compression.CODECS, cfg.name, cfg.params, "compression.params", RunFacts())[0]


def adapter_for(cfg: AdaptConfig, train: TrainConfig) -> Bandit | None:
    """The configured bandit, or None; an empty arm list means the train section's value."""
    if cfg.name == "none":
        return None
    arms = make_arms(
        cfg.clients_per_round or [train.clients_per_round],
        cfg.local_epochs or [train.local_epochs],
        cfg.batch_size or [train.batch_size],
        cfg.widths or [1.0],
    )
    built, _ = build(
        adapt.ADAPTERS,
        cfg.name,
        cfg.params,
        "adapt.params",
        RunFacts(),
        construct=lambda policy, params: policy(arms, params),
    )
    return built


def scheduler_for(cfg: SchedulingConfig) -> CarbonAwareScheduler | None:
    """The configured start-time scheduler, or None to start every round at once."""
    if cfg.name == "none":
        return None
    return build(scheduling.SCHEDULERS, cfg.name, cfg.params, "scheduling.params", RunFacts())[0]


def strategy_for(run: RunConfig) -> tuple[Strategy, Any]:
    """The configured aggregation strategy by itself (no privacy wrapper), and its bound
    params."""
    return build(
        strategy.STRATEGIES,
        run.strategy.name,
        run.strategy.params,
        "strategy.params",
        run_facts(run),
    )


def run_strategy_for(run: RunConfig) -> Strategy:
    """The run's strategy: the configured one, refused when it cannot tolerate the
    Byzantine updates asked for at the smallest cohort, and wrapped in DP-FedAvg with
    privacy.mode = "central"."""
    inner, _ = strategy_for(run)
    if isinstance(inner, RobustStrategy):
        smallest = min([run.train.clients_per_round, *run.adapt.clients_per_round])
        # The tolerance asked for derives from the attack's share unless given.
        derived = "byzantine" not in run.strategy.params and not inner.bounds_each_update
        share = run.attack.fraction if derived else None
        check_tolerance(inner, smallest, inner.num_byzantine, share)
        if smallest < inner.min_updates:
            raise ConfigError(
                f"strategy.name = {inner.name!r} {inner.min_updates_why}: it needs "
                f"{inner.min_updates} or more clients per round, not {smallest}"
            )
    return dp_wrapped(run, inner)


def dp_wrapped(run: RunConfig, inner: Strategy) -> Strategy:
    """``inner`` in DP-FedAvg with privacy.mode = "central" (clip, mean, noise), else as is."""
    dp = run.privacy
    if dp.mode != "central":
        return inner
    return DPFedAvg(
        inner,
        clip_norm=dp.clip_norm,
        noise_multiplier=dp.noise_multiplier,
        expected_clients=run.train.clients_per_round,
        seed=run.seed,
        adaptive_clip=dp.adaptive_clip,
        target_quantile=dp.target_quantile,
        clip_lr=dp.clip_lr,
        clip_count_stddev=dp.clip_count_stddev,
    )


def selector_for(run: RunConfig) -> ClientSelector:
    """The configured selector, in its fairness guard if one is asked for."""
    cfg = run.selection
    chosen, _ = build(selection.SELECTORS, cfg.name, cfg.params, "selection.params", run_facts(run))
    selection.check_selector(cfg.name, chosen)
    if cfg.fairness != "none":
        chosen = FairnessGuard(chosen, cfg.fairness, cfg.fairness_window, cfg.jain_floor)
    return chosen


def policy_record(run: RunConfig) -> dict[str, dict[str, Any]]:
    """Each named policy with every parameter it runs with (defaults and run facts filled
    in): what the ledger records of the run's policies."""
    facts = run_facts(run)
    out: dict[str, dict[str, Any]] = {}
    for key, registry, section in (
        ("strategy", strategy.STRATEGIES, run.strategy),
        ("selection", selection.SELECTORS, run.selection),
        ("compression", compression.CODECS, run.compression),
        ("scheduling", scheduling.SCHEDULERS, run.scheduling),
        ("adapt", adapt.ADAPTERS, run.adapt),
    ):
        if section.name == "none":
            continue
        ptype = registry.params_type(section.name)
        bound = bind_run(parse_params(ptype, section.params, f"{key}.params"), facts)
        out[key] = {"name": section.name, "params": as_dict(bound)}
    return out
