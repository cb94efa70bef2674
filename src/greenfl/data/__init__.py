"""Datasets and partitioners. A dataset is one entry in DATASETS: a loader taking the
run's DataConfig and seed."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from greenfl.data import digits, images
from greenfl.data.base import ArrayDataset, FederatedDataset, Partition
from greenfl.data.synthetic import SyntheticDataset

if TYPE_CHECKING:
    from greenfl.config import DataConfig


def _digits(cfg: DataConfig, seed: int) -> FederatedDataset:
    return digits.load(
        cfg.num_clients, cfg.partition, seed, cfg.alpha, cfg.classes_per_client, cfg.test_fraction
    )


def _synthetic(cfg: DataConfig, seed: int) -> FederatedDataset:
    return SyntheticDataset(
        cfg.num_clients, seed, cfg.synthetic_alpha, cfg.synthetic_beta, cfg.samples_per_client
    )


def _images(cfg: DataConfig, seed: int) -> FederatedDataset:
    return images.load(
        cfg.num_clients,
        cfg.partition,
        seed,
        cfg.samples_per_client,
        cfg.alpha,
        cfg.classes_per_client,
    )


DATASETS: dict[str, Callable[[DataConfig, int], FederatedDataset]] = {
    "digits": _digits,
    "synthetic": _synthetic,
    "images": _images,
}


def load_dataset(cfg: DataConfig, seed: int) -> FederatedDataset:
    return DATASETS[cfg.dataset](cfg, seed)


__all__ = [
    "DATASETS",
    "ArrayDataset",
    "FederatedDataset",
    "Partition",
    "SyntheticDataset",
    "load_dataset",
]
