"""Datasets and partitioners. A dataset is one entry in DATASETS: a loader taking plain
keyword arguments (greenfl.factories maps a run's DataConfig onto them)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from greenfl.core.registry import make_from
from greenfl.data import cifar, digits, hf, images, leaf, shakespeare
from greenfl.data.base import ArrayDataset, FederatedDataset, Partition
from greenfl.data.synthetic import SyntheticDataset

DATASETS: dict[str, Callable[..., FederatedDataset]] = {
    "digits": digits.load,
    "synthetic": SyntheticDataset,
    "images": images.load,
    "shakespeare": shakespeare.load,
    "femnist": partial(leaf.load, name="femnist"),
    "leaf": partial(leaf.load, name="leaf"),
    "cifar10": partial(cifar.load, "cifar10"),
    "cifar100": partial(cifar.load, "cifar100"),
    "hf": hf.load,
}


def make(name: str, **kwargs: Any) -> FederatedDataset:
    """The dataset registered as ``name``, built with its loader's keyword arguments."""
    return make_from("dataset", DATASETS, name, **kwargs)


__all__ = [
    "DATASETS",
    "ArrayDataset",
    "FederatedDataset",
    "Partition",
    "SyntheticDataset",
    "make",
]
