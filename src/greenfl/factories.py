"""The composition root: config sections in, policy objects out, each by its registry name.
Only this module (and the CLI / API that call it) reads a RunConfig to build policies; the
policies themselves take plain keyword arguments and never import config."""

from __future__ import annotations

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
    SelectionConfig,
    StrategyConfig,
    TrainConfig,
)
from greenfl.data.base import FederatedDataset
from greenfl.models import build_model, default_model
from greenfl.scheduling import CarbonAwareScheduler
from greenfl.selection import ClientSelector, FairnessGuard
from greenfl.strategy import Strategy


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
    kwargs = {"ucb": {"exploration": cfg.exploration}}
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


def strategy_for(cfg: StrategyConfig) -> Strategy:
    kwargs: dict[str, dict[str, float]] = {
        "fedavgm": {"server_lr": cfg.server_lr, "server_momentum": cfg.server_momentum},
        "fedprox": {"mu": cfg.mu},
        "trimmed_mean": {"trim_fraction": cfg.trim_fraction},
    }
    opt = {"server_lr": cfg.server_lr, "beta1": cfg.beta1, "beta2": cfg.beta2, "tau": cfg.tau}
    for name in ("fedadam", "fedyogi", "fedadagrad"):
        kwargs[name] = opt
    return strategy.make(cfg.name, **kwargs.get(cfg.name, {}))


def selector_for(cfg: SelectionConfig) -> ClientSelector:
    kwargs = {}
    if cfg.name == "oort":
        kwargs = {
            "preferred_duration_s": cfg.preferred_duration_s,
            "straggler_penalty": cfg.straggler_penalty,
            "exploration": cfg.exploration,
            "exploration_decay": cfg.exploration_decay,
            "min_exploration": cfg.min_exploration,
        }
    chosen = selection.make(cfg.name, **kwargs)
    if cfg.fairness != "none":
        chosen = FairnessGuard(chosen, cfg.fairness, cfg.fairness_window, cfg.jain_floor)
    return chosen


def dataset_for(cfg: DataConfig, seed: int) -> FederatedDataset:
    if cfg.dataset == "synthetic":
        return data.make(
            "synthetic",
            num_clients=cfg.num_clients,
            seed=seed,
            alpha=cfg.synthetic_alpha,
            beta=cfg.synthetic_beta,
            mean_samples=cfg.samples_per_client,
            sizes=cfg.synthetic_sizes,
        )
    if cfg.dataset == "shakespeare":
        return data.make(
            "shakespeare",
            num_clients=cfg.num_clients,
            seed=seed,
            min_samples=cfg.min_samples,
            test_fraction=cfg.test_fraction,
        )
    if cfg.dataset in ("femnist", "leaf"):
        return data.make(
            cfg.dataset,
            num_clients=cfg.num_clients,
            seed=seed,
            path=cfg.path,
            split=cfg.leaf_split,
            test_fraction=cfg.test_fraction,
        )
    if cfg.dataset in ("cifar10", "cifar100"):
        return data.make(
            cfg.dataset,
            path=cfg.path,
            num_clients=cfg.num_clients,
            partition=cfg.partition,
            seed=seed,
            alpha=cfg.alpha,
            classes_per_client=cfg.classes_per_client,
        )
    if cfg.dataset == "hf":
        return data.make(
            "hf",
            path=cfg.path,
            num_clients=cfg.num_clients,
            partition=cfg.partition,
            seed=seed,
            natural_id=cfg.natural_id,
            feature_column=cfg.feature_column,
            label_column=cfg.label_column,
            alpha=cfg.alpha,
            classes_per_client=cfg.classes_per_client,
            test_fraction=cfg.test_fraction,
        )
    if cfg.dataset == "images":
        return data.make(
            "images",
            num_clients=cfg.num_clients,
            partition=cfg.partition,
            seed=seed,
            samples_per_client=cfg.samples_per_client,
            alpha=cfg.alpha,
            classes_per_client=cfg.classes_per_client,
        )
    return data.make(
        cfg.dataset,
        num_clients=cfg.num_clients,
        partition=cfg.partition,
        seed=seed,
        alpha=cfg.alpha,
        classes_per_client=cfg.classes_per_client,
        test_fraction=cfg.test_fraction,
    )
