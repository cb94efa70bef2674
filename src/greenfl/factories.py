"""The composition root: config sections in, policy objects out, each by its registry name.
Only this module (and the CLI / API that call it) reads a RunConfig to build policies; the
policies themselves take plain keyword arguments and never import config."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from greenfl import adapt, compression, data, scheduling, selection, strategy
from greenfl.adapt import Bandit, make_arms
from greenfl.clients.trainer import ClientTrainer
from greenfl.compression import Codec
from greenfl.config import (
    AdaptConfig,
    CompressionConfig,
    DataConfig,
    RunConfig,
    SchedulingConfig,
    StrategyConfig,
    TrainConfig,
)
from greenfl.data.base import FederatedDataset
from greenfl.models import build_model, default_model
from greenfl.privacy import DPFedAvg
from greenfl.scheduling import CarbonAwareScheduler
from greenfl.selection import ClientSelector, FairnessGuard
from greenfl.strategy import RobustStrategy, Strategy


def codec_for(cfg: CompressionConfig) -> Codec:
    """A fresh codec (stateful ones start with no residuals)."""
    kwargs: dict[str, dict[str, float | int]] = {
        "topk": {"ratio": cfg.topk_ratio},
        "q8": {"chunk_size": cfg.chunk_size},
        "q4": {"chunk_size": cfg.chunk_size},
    }
    return compression.make(cfg.name, **kwargs.get(cfg.name, {}))


def adapter_for(cfg: AdaptConfig, train: TrainConfig) -> Bandit | None:
    """The configured bandit, or None; an empty arm list means the train section's value."""
    if cfg.name == "none":
        return None
    arms = make_arms(
        cfg.clients_per_round or [train.clients_per_round],
        cfg.local_epochs or [train.local_epochs],
        cfg.batch_size or [train.batch_size],
    )
    kwargs: dict[str, dict[str, float]] = {
        "ucb": {"exploration": cfg.exploration},
        "pooled": {"prior_rounds": cfg.prior_rounds, "gain_sd": cfg.gain_sd},
    }
    return adapt.make(cfg.name, arms, **kwargs.get(cfg.name, {}))


def scheduler_for(cfg: SchedulingConfig) -> CarbonAwareScheduler | None:
    """The configured start-time scheduler, or None to start every round at once."""
    if cfg.name == "none":
        return None
    return scheduling.make(
        cfg.name, slack_s=cfg.slack_s, step_s=cfg.step_s, max_total_wait_s=cfg.max_total_wait_s
    )


def trainer_for(cfg: RunConfig, model: nn.Module) -> ClientTrainer:
    if cfg.engine.backend == "ray":
        from greenfl.clients.ray_trainer import RayTrainer

        return RayTrainer(cfg.engine.ray_address)
    from greenfl.clients.vectorised import auto_trainer

    return auto_trainer(
        cfg.engine.trainer, model, cfg.train.clients_per_round, cfg.engine.vectorised_threads
    )


def build_model_for(cfg: RunConfig, dataset: FederatedDataset) -> nn.Module:
    """The configured model; ``auto`` is the dataset's standard one (``default_model``)."""
    torch.manual_seed(cfg.seed)
    return build_model(
        model_name_for(cfg), dataset.input_shape, dataset.num_classes, cfg.model.hidden
    )


def model_name_for(cfg: RunConfig) -> str:
    """The registry name of the run's model: ``auto`` resolved to the dataset's standard."""
    return default_model(cfg.data.dataset) if cfg.model.name == "auto" else cfg.model.name


def strategy_for(cfg: StrategyConfig, seed: int = 0) -> Strategy:
    """The configured aggregation strategy, by itself (no privacy wrapper)."""
    byzantine = {"num_byzantine": cfg.byzantine or 0}
    kwargs: dict[str, dict[str, Any]] = {
        "fedavgm": {"server_lr": cfg.server_lr, "server_momentum": cfg.server_momentum},
        "fedprox": {"mu": cfg.mu},
        "trimmed_mean": {"trim_fraction": cfg.trim_fraction, **byzantine},
        "median": byzantine,
        "krum": byzantine,
        "bulyan": byzantine,
        "multikrum": {"num_selected": cfg.multikrum_selected, **byzantine},
        "geomedian": {"max_iterations": cfg.geomedian_iterations, **byzantine},
        "centered_clip": {
            "clip_radius": cfg.centered_clip_radius,
            "num_iterations": cfg.centered_clip_iterations,
            **byzantine,
        },
        "clip": {
            "clip_norm": cfg.clip_norm,
            "noise_std": cfg.clip_noise_std,
            "seed": seed,
            **byzantine,
        },
    }
    opt = {"server_lr": cfg.server_lr, "beta1": cfg.beta1, "beta2": cfg.beta2, "tau": cfg.tau}
    for name in ("fedadam", "fedyogi", "fedadagrad"):
        kwargs[name] = opt
    return strategy.make(cfg.name, **kwargs.get(cfg.name, {}))


def byzantine_for(run: RunConfig) -> int:
    """The Byzantine updates a round's strategy must tolerate: strategy.byzantine, or the
    expected attackers in a cohort of the simulated attack."""
    if run.strategy.byzantine is not None:
        return run.strategy.byzantine
    return math.ceil(run.attack.fraction * run.train.clients_per_round - 1e-9)


def run_strategy_for(run: RunConfig) -> Strategy:
    """The run's strategy: the configured one, refused when it cannot tolerate the
    Byzantine updates asked for at the smallest cohort, and wrapped in DP-FedAvg with
    privacy.mode = "central"."""
    chosen = strategy.STRATEGIES[run.strategy.name]
    clipping = issubclass(chosen, RobustStrategy) and chosen.bounds_each_update
    byzantine = (run.strategy.byzantine or 0) if clipping else byzantine_for(run)
    sections = run.strategy.model_copy(update={"byzantine": byzantine})
    inner = strategy_for(sections, run.seed)
    # A plain mean under a simulated attack is the undefended baseline, not a mistake;
    # asking it to tolerate attackers explicitly is.
    if isinstance(inner, RobustStrategy) or run.strategy.byzantine:
        smallest = min([run.train.clients_per_round, *run.adapt.clients_per_round])
        strategy.check_tolerance(inner, smallest, byzantine)
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
    """The configured selector (fedzero plans within the round's window and epochs, so it
    reads the fleet and train sections too)."""
    cfg = run.selection
    kwargs: dict[str, Any] = {}
    if cfg.name == "oort":
        kwargs = {
            "preferred_duration_s": cfg.preferred_duration_s,
            "straggler_penalty": cfg.straggler_penalty,
            "exploration": cfg.exploration,
            "exploration_decay": cfg.exploration_decay,
            "min_exploration": cfg.min_exploration,
        }
    elif cfg.name == "fedzero":
        kwargs = {
            "window_s": run.fleet.deadline_s,
            "local_epochs": run.train.local_epochs,
            "min_epochs": cfg.fedzero_min_epochs,
            "clean_share": cfg.fedzero_clean_share,
        }
    elif cfg.name == "autofl":
        kwargs = {
            "exploration": cfg.autofl_exploration,
            "exploration_decay": cfg.autofl_exploration_decay,
            "min_exploration": cfg.autofl_min_exploration,
            "learning_rate": cfg.autofl_learning_rate,
        }
    chosen = selection.make(cfg.name, **kwargs)
    if cfg.fairness != "none":
        chosen = FairnessGuard(chosen, cfg.fairness, cfg.fairness_window, cfg.jain_floor)
    return chosen


# Each dataset's loader keyword -> the DataConfig field it takes (besides seed).
_PARTITIONED = {
    "num_clients": "num_clients",
    "partition": "partition",
    "alpha": "alpha",
    "classes_per_client": "classes_per_client",
}
_DATA_KWARGS: dict[str, dict[str, str]] = {
    "digits": {**_PARTITIONED, "test_fraction": "test_fraction"},
    "synthetic": {
        "num_clients": "num_clients",
        "alpha": "synthetic_alpha",
        "beta": "synthetic_beta",
        "mean_samples": "samples_per_client",
        "sizes": "synthetic_sizes",
    },
    "images": {**_PARTITIONED, "samples_per_client": "samples_per_client"},
    "shakespeare": {
        "num_clients": "num_clients",
        "min_samples": "min_samples",
        "test_fraction": "test_fraction",
    },
    "femnist": {
        "num_clients": "num_clients",
        "path": "path",
        "split": "leaf_split",
        "test_fraction": "test_fraction",
    },
    "cifar10": {**_PARTITIONED, "path": "path"},
    "hf": {
        **_PARTITIONED,
        "path": "path",
        "natural_id": "natural_id",
        "feature_column": "feature_column",
        "label_column": "label_column",
        "test_fraction": "test_fraction",
    },
}
_DATA_KWARGS["leaf"] = _DATA_KWARGS["femnist"]
_DATA_KWARGS["cifar100"] = _DATA_KWARGS["cifar10"]


def dataset_for(cfg: DataConfig, seed: int) -> FederatedDataset:
    """The configured dataset; a dataset registered without an entry in _DATA_KWARGS (one
    added through the Python API) gets the partitioned datasets' arguments."""
    fields = _DATA_KWARGS.get(cfg.dataset, {**_PARTITIONED, "test_fraction": "test_fraction"})
    values = cfg.model_dump()
    kwargs = {arg: values[field] for arg, field in fields.items()}
    return data.make(cfg.dataset, seed=seed, **kwargs)
