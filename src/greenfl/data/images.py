"""Synthetic 28x28 grey images: ten class templates plus Gaussian noise. A compute-heavy
offline stand-in for MNIST-like data (no download), used by the CNN benchmark."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from greenfl.core.registry import params
from greenfl.data.base import ArrayDataset, DatasetDefaults, DataSettings
from greenfl.data.partition import make_partition

SIDE = 28
NUM_CLASSES = 10
NOISE_STD = 1.5
TEST_SAMPLES = 1000


def templates(rng: np.random.Generator) -> np.ndarray:
    """Ten smooth class templates: N(0, 1) pixels, 3x3 box blur, rescaled to unit std (the
    same recipe as the benchmark's peer scripts, so all frameworks learn the same task)."""
    raw = rng.standard_normal((NUM_CLASSES, SIDE + 2, SIDE + 2))
    tpl = sum(raw[:, i : i + SIDE, j : j + SIDE] for i in range(3) for j in range(3)) / 9.0
    tpl = (tpl - tpl.mean(axis=(1, 2), keepdims=True)) / tpl.std(axis=(1, 2), keepdims=True)
    return tpl.astype(np.float32)


def load(
    num_clients: int,
    partition: str,
    seed: int,
    samples_per_client: float,
    alpha: float = 0.5,
    classes_per_client: int = 2,
) -> ArrayDataset:
    rng = np.random.default_rng([seed, 28])
    tpl = templates(rng)
    n_train = int(round(samples_per_client)) * num_clients

    def draw(y: np.ndarray) -> np.ndarray:
        return tpl[y] + rng.normal(0, NOISE_STD, (len(y), SIDE, SIDE)).astype(np.float32)

    y_train = rng.integers(0, NUM_CLASSES, n_train)
    x_train = draw(y_train)
    y_test = np.repeat(np.arange(NUM_CLASSES), TEST_SAMPLES // NUM_CLASSES)
    x_test = draw(y_test)
    part = make_partition(partition, y_train, num_clients, seed, alpha, classes_per_client)
    return ArrayDataset(
        "images", x_train, y_train, x_test, y_test, part, (1, SIDE, SIDE), 10, seed=seed
    )


@params
class ImagesParams:
    samples_per_client: float = Field(20.0, gt=0, le=1e6, description="training samples per client")


class Images:
    """Synthetic 28x28 images of ten noisy templates, split by ``data.partition``."""

    Params = ImagesParams
    reads_path = False
    defaults = DatasetDefaults(model="cnn")

    @classmethod
    def load(cls, settings: DataSettings, params: ImagesParams) -> ArrayDataset:
        s = settings
        return load(
            s.num_clients,
            s.partition,
            s.seed,
            params.samples_per_client,
            s.alpha,
            s.classes_per_client,
        )
