"""A Hugging Face ``datasets`` dataset saved with ``save_to_disk`` (a Dataset, or a
DatasetDict with a ``train`` and optionally a ``test`` split), read from ``data.path``.
Needs the ``hf`` extra (``pip install 'greenfl[hf]'``); nothing is downloaded.

With ``natural_id`` each distinct value of that column is one client, as Flower Datasets'
NaturalIdPartitioner does: ``num_clients`` of them are drawn with the run's seed, and each
client's test data is its own rows of the test split (or, without one, ``test_fraction`` of
its rows). Without it, the rows are split by ``data.partition`` and clients' test data
follows their label mix.

Features are one numeric column (numbers, arrays, or images, which are decoded to arrays);
integer pixel values are scaled to [0, 1]. Labels are integers from 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from greenfl.core.errors import DataError
from greenfl.core.registry import NoParams
from greenfl.data.base import ArrayDataset, DatasetDefaults, DataSettings, Partition
from greenfl.data.partition import make_partition

_SELECT_STREAM = 15
_SPLIT_STREAM = 16


def _open(path: str) -> tuple[Any, Any | None]:
    try:
        import datasets
    except ImportError:
        raise DataError(
            "data.dataset = 'hf' needs Hugging Face datasets: pip install 'greenfl[hf]'"
        ) from None
    try:
        loaded = datasets.load_from_disk(path)
    except FileNotFoundError as e:
        raise DataError(
            f"data.path = {path!r} is not a save_to_disk folder ({e}); save one with "
            "datasets.load_dataset(...).save_to_disk(path) where there is internet"
        ) from None
    if isinstance(loaded, datasets.DatasetDict):
        if "train" not in loaded:
            raise DataError(f"{path}: a DatasetDict needs a 'train' split, has {list(loaded)}")
        return loaded["train"], loaded["test"] if "test" in loaded else None
    return loaded, None


def _columns(table: Any, path: str, feature: str | None, label: str, natural_id: str | None) -> str:
    names = list(table.column_names)
    for wanted, key in (
        (label, "label_column"),
        (natural_id, "natural_id"),
        (feature, "feature_column"),
    ):
        if wanted is not None and wanted not in names:
            raise DataError(f"{path}: data.{key} = {wanted!r} is not a column; columns: {names}")
    if feature is not None:
        return feature
    rest = [n for n in names if n not in (label, natural_id)]
    if len(rest) != 1:
        raise DataError(f"{path}: set data.feature_column, one of {rest}")
    return rest[0]


def _arrays(table: Any, feature: str, label: str, path: str) -> tuple[np.ndarray, np.ndarray]:
    numpy_table = table.with_format("numpy")
    try:
        x = np.stack([np.asarray(v) for v in numpy_table[feature]]) if len(table) else None
        y = np.asarray(numpy_table[label]).astype(np.int64)
    except (TypeError, ValueError) as e:
        raise DataError(
            f"{path}: column {feature!r} is not numeric arrays of one shape ({e})"
        ) from None
    if x is None:
        return np.zeros((0, 1), np.float32), y
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{path}: column {feature!r} holds {x.dtype}, not numbers")
    if np.issubdtype(x.dtype, np.integer) and x.min() >= 0 and x.max() <= 255 and x.ndim >= 3:
        x = x / 255.0  # images
    if x.ndim == 4 and x.shape[-1] in (1, 3):  # HWC images to CHW
        x = x.transpose(0, 3, 1, 2)
    if x.ndim == 3:  # HW grey images
        x = x[:, None]
    return x.astype(np.float32), y


def load(
    path: str,
    num_clients: int,
    partition: str,
    seed: int,
    natural_id: str | None = None,
    feature_column: str | None = None,
    label_column: str = "label",
    alpha: float = 0.5,
    classes_per_client: int = 2,
    test_fraction: float = 0.2,
) -> ArrayDataset:
    train, test = _open(path)
    feature = _columns(train, path, feature_column, label_column, natural_id)
    x, y = _arrays(train, feature, label_column, path)
    shape = tuple(int(d) for d in x.shape[1:])
    if natural_id is None:
        if test is None:
            order = np.random.default_rng([seed, _SPLIT_STREAM]).permutation(len(y))
            n_test = int(round(len(y) * test_fraction))
            x_test, y_test = x[order[:n_test]], y[order[:n_test]]
            x, y = x[order[n_test:]], y[order[n_test:]]
        else:
            x_test, y_test = _arrays(test, feature, label_column, path)
        part = make_partition(partition, y, num_clients, seed, alpha, classes_per_client)
        classes = int(max(y.max(initial=0), y_test.max(initial=0))) + 1
        return ArrayDataset("hf", x, y, x_test, y_test, part, shape, classes, seed=seed)
    ids = np.asarray(train[natural_id])
    values = np.unique(ids)
    if num_clients > len(values):
        raise DataError(
            f"{path}: column {natural_id!r} has {len(values)} distinct values (clients); "
            f"data.num_clients = {num_clients} asks for more"
        )
    rng = np.random.default_rng([seed, _SELECT_STREAM])
    picked = values[np.sort(rng.choice(len(values), num_clients, replace=False))]
    if test is not None:
        x_test, y_test = _arrays(test, feature, label_column, path)
        test_ids = np.asarray(test[natural_id])
        train_rows = [np.flatnonzero(ids == v) for v in picked]
        test_rows = [np.flatnonzero(test_ids == v) for v in picked]
    else:
        train_rows, test_rows = [], []
        for c, v in enumerate(picked):
            rows = np.flatnonzero(ids == v)
            rows = rows[np.random.default_rng([seed, _SPLIT_STREAM, c]).permutation(len(rows))]
            n_test = int(round(len(rows) * test_fraction))
            test_rows.append(np.sort(rows[:n_test]))
            train_rows.append(np.sort(rows[n_test:]))
        x_test, y_test = x, y
    # the central test set: the drawn clients' test rows, client by client
    used = np.concatenate(test_rows) if test_rows else np.zeros(0, np.int64)
    classes = int(max(y.max(initial=0), y_test.max(initial=0))) + 1
    return ArrayDataset(
        "hf",
        x,
        y,
        x_test[used],
        y_test[used],
        Partition.from_lists(train_rows),
        shape,
        classes,
        test_partition=Partition.contiguous([len(r) for r in test_rows]),
        seed=seed,
    )


class HuggingFace:
    """A Hugging Face dataset saved to disk at ``data.path``: split by
    ``data.natural_id``'s values (one client each) or by ``data.partition``."""

    Params = NoParams
    reads_path = True
    defaults = DatasetDefaults(model="mlp")

    @classmethod
    def load(cls, settings: DataSettings, params: NoParams) -> ArrayDataset:
        s = settings
        return load(
            str(s.path),
            s.num_clients,
            s.partition,
            s.seed,
            s.natural_id,
            s.feature_column,
            s.label_column,
            s.alpha,
            s.classes_per_client,
            s.test_fraction,
        )
