"""LEAF datasets (Caldas et al., 2018) read from LEAF's own JSON output: ``data.path`` holds
``train/`` and ``test/`` folders of ``*.json`` files, each an object with ``users``,
``num_samples`` and ``user_data`` ({user: {"x": [...], "y": [...]}}), as LEAF's
``preprocess.sh`` writes them into ``data/<name>/data``.

One client per LEAF user. ``split = "leaf"`` keeps LEAF's own per-user train/test files;
``"sample"`` pools each user's samples and holds out ``test_fraction`` of them, seeded.
``num_clients`` users are drawn with the run's seed. ``femnist`` reads the x rows as 28x28
single-channel images with 62 classes; ``leaf`` takes any LEAF dataset with numeric
features (the feature size and the class count come from the data).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from greenfl.core.errors import DataError
from greenfl.core.registry import params
from greenfl.data.base import ArrayDataset, DatasetDefaults, DataSettings, Partition

_SELECT_STREAM = 13
_SPLIT_STREAM = 14
FEMNIST_SHAPE = (1, 28, 28)
FEMNIST_CLASSES = 62
HOW_TO_GET = (
    "LEAF's preprocessing writes it: git clone https://github.com/TalwalkarLab/leaf, then in "
    "leaf/data/femnist run ./preprocess.sh -s niid --sf 0.05 -k 0 -t sample, and set data.path "
    "to leaf/data/femnist/data (the folder holding train/ and test/)"
)


def read_split(folder: Path) -> dict[str, tuple[list[Any], list[Any]]]:
    """user -> (x rows, y labels) over every LEAF JSON file in ``folder``."""
    if not folder.is_dir():
        raise DataError(
            f"{folder} is missing: a LEAF data folder holds train/ and test/; " + HOW_TO_GET
        )
    files = sorted(folder.glob("*.json"))
    if not files:
        raise DataError(f"{folder} holds no .json files; " + HOW_TO_GET)
    users: dict[str, tuple[list[Any], list[Any]]] = {}
    for path in files:
        try:
            doc = json.loads(path.read_text())
            data = doc["user_data"]
            names = doc["users"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise DataError(f"{path} is not a LEAF JSON file (users, user_data): {e}") from None
        for user in names:
            if user not in data or "x" not in data[user] or "y" not in data[user]:
                raise DataError(f"{path}: user {user!r} has no user_data x and y")
            xs, ys = users.setdefault(user, ([], []))
            xs.extend(data[user]["x"])
            ys.extend(data[user]["y"])
    return users


def load(
    num_clients: int,
    seed: int,
    path: str,
    name: str = "leaf",
    split: str = "leaf",
    test_fraction: float = 0.2,
) -> ArrayDataset:
    root = Path(path)
    train = read_split(root / "train")
    test = read_split(root / "test") if split == "leaf" else {}
    pooled = read_split(root / "test") if split == "sample" and (root / "test").is_dir() else {}
    for user, (xs, ys) in pooled.items():  # LEAF's own test rows back into users' samples
        tx, ty = train.setdefault(user, ([], []))
        tx.extend(xs)
        ty.extend(ys)
    users = sorted(u for u, (_, ys) in train.items() if ys)
    if num_clients > len(users):
        raise DataError(
            f"{root} holds {len(users)} LEAF users with training data; "
            f"data.num_clients = {num_clients} asks for more"
        )
    rng = np.random.default_rng([seed, _SELECT_STREAM])
    picked = [users[i] for i in np.sort(rng.choice(len(users), num_clients, replace=False))]
    train_parts, test_parts = [], []
    for cid, user in enumerate(picked):
        x, y = train[user]
        if split == "sample":
            order = np.random.default_rng([seed, _SPLIT_STREAM, cid]).permutation(len(y))
            n_test = int(round(len(y) * test_fraction))
            test_parts.append(([x[i] for i in order[:n_test]], [y[i] for i in order[:n_test]]))
            train_parts.append(([x[i] for i in order[n_test:]], [y[i] for i in order[n_test:]]))
        else:
            train_parts.append((x, y))
            test_parts.append(test.get(user, ([], [])))
    x_train, y_train, part = _stack(train_parts, root)
    x_test, y_test, test_part = _stack(test_parts, root, x_train.shape[1])
    if name == "femnist":
        shape, classes = FEMNIST_SHAPE, FEMNIST_CLASSES
        if x_train.shape[1] != 784:
            raise DataError(f"{root}: femnist rows hold 784 pixels, these hold {x_train.shape[1]}")
    else:
        shape = (x_train.shape[1],)
        classes = int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
    if y_train.min(initial=0) < 0 or y_train.max(initial=0) >= classes:
        raise DataError(f"{root}: labels must lie in [0, {classes}) for {name}")
    return ArrayDataset(
        name,
        x_train,
        y_train,
        x_test,
        y_test,
        part,
        shape,
        classes,
        test_partition=test_part,
        seed=seed,
    )


def _stack(
    parts: list[tuple[list[Any], list[Any]]], root: Path, width: int | None = None
) -> tuple[np.ndarray, np.ndarray, Partition]:
    rows = [r for xs, _ in parts for r in xs]
    labels = [v for _, ys in parts for v in ys]
    try:
        x = np.asarray(rows, dtype=np.float32).reshape(len(rows), -1 if rows else width or 0)
        y = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError) as e:
        raise DataError(
            f"{root}: LEAF x rows must be equal-length numbers and y integers ({e})"
        ) from None
    return x, y, Partition.contiguous([len(ys) for _, ys in parts])


@params
class LeafParams:
    split: Literal["leaf", "sample"] = Field(
        "leaf",
        description="LEAF's own train/test files, or each user's samples pooled and split by "
        "data.test_fraction",
    )


class Leaf:
    """Any LEAF dataset read from ``data.path`` (a folder holding train/ and test/), one
    client per LEAF user."""

    name = "leaf"
    Params = LeafParams
    reads_path = True
    defaults = DatasetDefaults(model="mlp")

    @classmethod
    def load(cls, settings: DataSettings, params: LeafParams) -> ArrayDataset:
        s = settings
        return load(s.num_clients, s.seed, str(s.path), cls.name, params.split, s.test_fraction)


class Femnist(Leaf):
    """LEAF's FEMNIST: handwritten characters, one client per writer."""

    name = "femnist"
    # LEAF's CNN; batch 10 and lr 0.06 as in the FEMNIST baseline (LEAF's paper).
    defaults = DatasetDefaults(
        model="femnist_cnn",
        train={"clients_per_round": 10, "local_epochs": 1, "batch_size": 10, "lr": 0.06},
        eval={"every": 5, "clients": 50},
    )
