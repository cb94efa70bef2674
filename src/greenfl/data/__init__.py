"""Datasets and partitioners. A dataset is one entry in DATASETS: a loader taking plain
keyword arguments (greenfl.factories maps a run's DataConfig onto them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from greenfl.core.registry import make_from
from greenfl.data import digits, images, shakespeare
from greenfl.data.base import ArrayDataset, FederatedDataset, Partition
from greenfl.data.synthetic import SyntheticDataset

DATASETS: dict[str, Callable[..., FederatedDataset]] = {
    "digits": digits.load,
    "synthetic": SyntheticDataset,
    "images": images.load,
    "shakespeare": shakespeare.load,
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
