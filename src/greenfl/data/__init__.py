"""Datasets and partitioners. A dataset is one entry in DATASETS (or an entry point in the
``greenfl.datasets`` group of an installed package): a source type with its own ``Params``,
its ``defaults`` (standard model and round parameters) and ``load(settings, params)``
(``greenfl.data.base.DatasetSource``).

Importing this package imports no dataset (nor torch)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from greenfl.core.registry import Registry

if TYPE_CHECKING:
    from greenfl.data.base import DatasetSource, DataSettings, FederatedDataset

DATASETS: Registry[DatasetSource] = Registry(
    "dataset",
    "greenfl.datasets",
    {
        "digits": "greenfl.data.digits:Digits",
        "synthetic": "greenfl.data.synthetic:Synthetic",
        "images": "greenfl.data.images:Images",
        "shakespeare": "greenfl.data.shakespeare:Shakespeare",
        "femnist": "greenfl.data.leaf:Femnist",
        "femnist_writers": "greenfl.data.writers:FemnistWriters",
        "leaf": "greenfl.data.leaf:Leaf",
        "cifar10": "greenfl.data.cifar:Cifar10",
        "cifar100": "greenfl.data.cifar:Cifar100",
        "hf": "greenfl.data.hf:HuggingFace",
    },
)


def make(name: str, settings: DataSettings | None = None, **params: Any) -> FederatedDataset:
    """The dataset registered as ``name``, loaded with ``settings`` (the shared [data]
    keys; defaults otherwise) and these parameters of its own."""
    from greenfl.data.base import DataSettings

    source = DATASETS.lookup(name)
    values = DATASETS.parse(name, params, f"dataset {name!r}")
    return source.load(settings if settings is not None else DataSettings(), values)


__all__ = ["DATASETS", "make"]
