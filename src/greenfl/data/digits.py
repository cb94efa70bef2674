"""sklearn's handwritten digits (1,797 8x8 images), shipped with scikit-learn: works offline."""

from __future__ import annotations

import numpy as np

from greenfl.core.registry import NoParams
from greenfl.data.base import ArrayDataset, DatasetDefaults, DataSettings
from greenfl.data.partition import make_partition


def load(
    num_clients: int,
    partition: str,
    seed: int,
    alpha: float = 0.5,
    classes_per_client: int = 2,
    test_fraction: float = 0.2,
) -> ArrayDataset:
    # Imported here: scikit-learn takes ~1 s to import and only this dataset needs it.
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    part = make_partition(partition, y_train, num_clients, seed, alpha, classes_per_client)
    return ArrayDataset("digits", x_train, y_train, x_test, y_test, part, (64,), 10, seed=seed)


class Digits:
    """scikit-learn's handwritten digits, split by ``data.partition``."""

    Params = NoParams
    reads_path = False
    # The quickstart's round: 10 of 100 clients, 5 local epochs of batch 8 (an MLP on 8x8
    # images trains in milliseconds, so local work is cheap and rounds are few).
    defaults = DatasetDefaults(
        model="mlp",
        train={"clients_per_round": 10, "local_epochs": 5, "batch_size": 8, "lr": 0.1},
    )

    @classmethod
    def load(cls, settings: DataSettings, params: NoParams) -> ArrayDataset:
        s = settings
        return load(
            s.num_clients, s.partition, s.seed, s.alpha, s.classes_per_client, s.test_fraction
        )
