"""Synthetic 28x28 grey images: ten class templates plus Gaussian noise. A compute-heavy
offline stand-in for MNIST-like data (no download), used by the CNN benchmark."""

from __future__ import annotations

import numpy as np

from greenfl.data.base import ArrayDataset
from greenfl.data.partition import make_partition

SIDE = 28
NUM_CLASSES = 10
NOISE_STD = 0.6
TEST_SAMPLES = 1000


def load(
    num_clients: int,
    partition: str,
    seed: int,
    samples_per_client: float,
    alpha: float = 0.5,
    classes_per_client: int = 2,
) -> ArrayDataset:
    rng = np.random.default_rng([seed, 28])
    templates = rng.random((NUM_CLASSES, SIDE, SIDE)).astype(np.float32)
    n_train = int(round(samples_per_client)) * num_clients

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, NUM_CLASSES, n)
        x = templates[y] + rng.normal(0, NOISE_STD, (n, SIDE, SIDE)).astype(np.float32)
        return x, y

    x_train, y_train = draw(n_train)
    x_test, y_test = draw(TEST_SAMPLES)
    part = make_partition(partition, y_train, num_clients, seed, alpha, classes_per_client)
    return ArrayDataset("images", x_train, y_train, x_test, y_test, part, (1, SIDE, SIDE), 10)
