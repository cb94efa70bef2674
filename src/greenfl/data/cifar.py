"""CIFAR-10 and CIFAR-100 read from torchvision's on-disk format: ``data.path`` is the root
that holds ``cifar-10-batches-py/`` (data_batch_1..5, test_batch) or ``cifar-100-python/``
(train, test), as ``torchvision.datasets.CIFAR10(root, download=True)`` leaves it. Nothing is
downloaded here. Pixels are scaled to [0, 1] and normalised per channel with the training
set's own mean and standard deviation; the training set is split across clients by
``data.partition`` (iid, dirichlet or shard).

The batches are Python pickles, and unpickling runs code: they are read with an unpickler
that admits only the numpy array constructors these files need.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from greenfl.core.errors import DataError
from greenfl.core.registry import NoParams
from greenfl.data.base import ArrayDataset, DatasetDefaults, DataSettings
from greenfl.data.partition import make_partition

_LAYOUT = {
    "cifar10": (
        "cifar-10-batches-py",
        [f"data_batch_{i}" for i in range(1, 6)],
        ["test_batch"],
        "labels",
        10,
    ),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "fine_labels", 100),
}
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise DataError(f"refusing to unpickle {module}.{name}: not a CIFAR batch")
        return super().find_class(module, name)


def read_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [n, 3, 32, 32], labels int64) of one batch file."""
    try:
        with path.open("rb") as f:
            raw = _SafeUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as e:
        raise DataError(f"{path} is not a CIFAR batch: {e}") from None
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}
    if "data" not in batch or label_key not in batch:
        raise DataError(f"{path} has no 'data' and {label_key!r} entries")
    x = np.asarray(batch["data"], dtype=np.uint8)
    if x.ndim != 2 or x.shape[1] != 3072:
        raise DataError(f"{path}: data must be rows of 3072 bytes, got shape {x.shape}")
    return x.reshape(-1, 3, 32, 32), np.asarray(batch[label_key], dtype=np.int64)


def load(
    name: str,
    path: str,
    num_clients: int,
    partition: str,
    seed: int,
    alpha: float = 0.5,
    classes_per_client: int = 2,
) -> ArrayDataset:
    folder, train_files, test_files, label_key, classes = _LAYOUT[name]
    root = Path(path) / folder
    if not root.is_dir():
        raise DataError(
            f"{root} is missing: data.path must be torchvision's CIFAR root. Where there is "
            f'internet: python -c "import torchvision; torchvision.datasets.'
            f"{name.upper()}('{path}', download=True)\""
        )
    train = [read_batch(root / f, label_key) for f in train_files]
    test = [read_batch(root / f, label_key) for f in test_files]
    x_train = np.concatenate([x for x, _ in train]).astype(np.float32) / 255.0
    y_train = np.concatenate([y for _, y in train])
    x_test = np.concatenate([x for x, _ in test]).astype(np.float32) / 255.0
    y_test = np.concatenate([y for _, y in test])
    if max(y_train.max(initial=0), y_test.max(initial=0)) >= classes or y_train.min(initial=0) < 0:
        raise DataError(f"{root}: labels must lie in [0, {classes})")
    mean = x_train.mean(axis=(0, 2, 3), keepdims=True)
    std = x_train.std(axis=(0, 2, 3), keepdims=True) + 1e-8
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    part = make_partition(partition, y_train, num_clients, seed, alpha, classes_per_client)
    return ArrayDataset(
        name, x_train, y_train, x_test, y_test, part, (3, 32, 32), classes, seed=seed
    )


class Cifar10:
    """CIFAR-10 from torchvision's on-disk layout under ``data.path``, split by
    ``data.partition``."""

    name = "cifar10"
    Params = NoParams
    reads_path = True
    # An estimate, not tuned: one epoch of a client's ~500 images in batches of 32 keeps a
    # round of the CIFAR CNN to seconds on a CPU; evaluation capped as for Shakespeare.
    defaults = DatasetDefaults(
        model="cifar_cnn",
        train={"clients_per_round": 10, "local_epochs": 1, "batch_size": 32, "lr": 0.05},
        eval={"every": 5, "clients": 20, "max_samples": 200},
    )

    @classmethod
    def load(cls, settings: DataSettings, params: NoParams) -> ArrayDataset:
        s = settings
        return load(
            cls.name, str(s.path), s.num_clients, s.partition, s.seed, s.alpha, s.classes_per_client
        )


class Cifar100(Cifar10):
    """CIFAR-100, as CIFAR-10."""

    name = "cifar100"
