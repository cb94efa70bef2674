"""The dataset and the model from the config: each by its registry name, with its own
validated params; ``model.name = "auto"`` is the dataset's standard model."""

from __future__ import annotations

import torch
from torch import nn

from greenfl.config import DataConfig, RunConfig
from greenfl.core.errors import ConfigError
from greenfl.core.registry import RunFacts, build
from greenfl.data import DATASETS
from greenfl.data.base import DataSettings, FederatedDataset
from greenfl.data.region_skew import RegionSkewed
from greenfl.fleet.population import Population
from greenfl.models import MODELS


def data_settings(cfg: DataConfig, seed: int) -> DataSettings:
    """The [data] keys every dataset shares, and the run's seed."""
    return DataSettings(
        num_clients=cfg.num_clients,
        seed=seed,
        partition=cfg.partition,
        alpha=cfg.alpha,
        classes_per_client=cfg.classes_per_client,
        test_fraction=cfg.test_fraction,
        path=cfg.path,
        natural_id=cfg.natural_id,
        feature_column=cfg.feature_column,
        label_column=cfg.label_column,
    )


def dataset_for(cfg: DataConfig, seed: int) -> FederatedDataset:
    """The configured dataset."""
    settings = data_settings(cfg, seed)
    dataset, _ = build(
        DATASETS,
        cfg.dataset,
        cfg.params,
        "data.params",
        RunFacts(seed=seed),
        construct=lambda source, params: source.load(settings, params),
    )
    return dataset


def apply_region_skew(
    cfg: RunConfig, dataset: FederatedDataset, population: Population
) -> FederatedDataset:
    """``dataset`` with each client's data shifted by its region (``data.region_skew``);
    unchanged at 0. The region is the population's assignment, which depends on the fleet,
    the number of clients and the seed only, so the data never changes who is where."""
    if cfg.data.region_skew == 0:
        return dataset
    return RegionSkewed(
        dataset,
        population.region,
        len(population.fleet.regions),
        cfg.data.region_skew,
        cfg.seed,
    )


def model_name_for(cfg: RunConfig) -> str:
    """The registry name of the run's model: ``auto`` resolved to the dataset's standard."""
    if cfg.model.name != "auto":
        return cfg.model.name
    return DATASETS.lookup(cfg.data.dataset).defaults.model


def build_model_for(cfg: RunConfig, dataset: FederatedDataset) -> nn.Module:
    """The configured model for ``dataset``'s inputs and classes, initialised from the
    run's seed."""
    torch.manual_seed(cfg.seed)
    name = model_name_for(cfg)
    if name not in MODELS:
        raise ConfigError(
            f"model.name = 'auto': dataset {cfg.data.dataset!r} names model "
            f"{name!r}, which is not registered"
        )
    shape, classes = tuple(dataset.input_shape), dataset.num_classes
    model, _ = build(
        MODELS,
        name,
        cfg.model.params,
        "model.params",
        RunFacts(seed=cfg.seed),
        construct=lambda builder, params: builder.build(shape, classes, params),
    )
    return model


def check_given_dataset(cfg: RunConfig, dataset: FederatedDataset) -> None:
    """A dataset object handed to a run must be the size the config says (its clients are
    the population: a mismatch would silently run another population than configured)."""
    if dataset.num_clients != cfg.data.num_clients:
        raise ConfigError(
            f"data.num_clients = {cfg.data.num_clients}, but the dataset given holds "
            f"{dataset.num_clients} clients: set data.num_clients = {dataset.num_clients}"
        )
