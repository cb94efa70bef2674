"""Generated CIFAR-10-shaped data in torchvision's real on-disk format, for benchmarks on a
machine without the real CIFAR-10 (nothing is downloaded here).

Each of the 10 classes is a seeded template: a smooth colour field (a few random 2-D
cosines per channel) plus a class-specific oriented stripe pattern. An image is its
class's template, shifted by up to 4 pixels, mirrored half the time, scaled in brightness
by 0.7-1.3 and blurred by Gaussian noise (sd 0.25 of the pixel range): learnable by a CNN,
not by a linear model in a round, and harder than it looks at small budgets. It is NOT
CIFAR-10: accuracies on it are not comparable with published CIFAR-10 figures, and
BENCHMARKS.md says so beside every number measured on it.

The files are ``cifar-10-batches-py/data_batch_1..5``, ``test_batch`` and ``batches.meta``,
pickled dicts with ``data`` (uint8, n x 3072, channel-major rows) and ``labels`` as
torchvision writes them, so greenfl reads them through its real loader (data.path).

    python bench/cifar_fixture.py /tmp/greenfl-bench-data/cifar-fixture   # ~10 s
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np

CLASSES = 10
SIDE = 32
TRAIN_PER_BATCH = 2_000  # 5 batches: 10,000 training images (the real set has 50,000)
TEST_IMAGES = 2_000
NOISE_SD = 0.25
SHIFT_PX = 4


def templates(rng: np.random.Generator) -> np.ndarray:
    """[CLASSES, 3, 32, 32] float templates in [0, 1]."""
    yy, xx = np.meshgrid(np.arange(SIDE), np.arange(SIDE), indexing="ij")
    out = np.zeros((CLASSES, 3, SIDE, SIDE))
    for c in range(CLASSES):
        for ch in range(3):
            field = np.zeros((SIDE, SIDE))
            for _ in range(3):
                fy, fx = rng.uniform(0.02, 0.12, size=2)
                phase = rng.uniform(0, 2 * np.pi)
                field += np.cos(2 * np.pi * (fy * yy + fx * xx) + phase)
            angle = np.pi * c / CLASSES  # one stripe orientation per class
            stripes = np.cos(0.6 * (np.cos(angle) * xx + np.sin(angle) * yy))
            out[c, ch] = 0.5 + 0.15 * field / 3 + 0.2 * stripes
    return np.clip(out, 0, 1)


def images(rng: np.random.Generator, tmpl: np.ndarray, n: int) -> tuple[np.ndarray, list[int]]:
    labels = rng.integers(0, CLASSES, size=n)
    data = np.empty((n, 3, SIDE, SIDE), dtype=np.uint8)
    for i, y in enumerate(labels):
        img = tmpl[y]
        dy, dx = rng.integers(-SHIFT_PX, SHIFT_PX + 1, size=2)
        img = np.roll(img, (int(dy), int(dx)), axis=(1, 2))
        if rng.random() < 0.5:
            img = img[:, :, ::-1]
        img = img * rng.uniform(0.7, 1.3) + rng.normal(0, NOISE_SD, size=img.shape)
        data[i] = np.clip(img * 255, 0, 255).astype(np.uint8)
    return data.reshape(n, -1), [int(y) for y in labels]


def write(root: Path, seed: int = 0) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tmpl = templates(rng)
    for name, n in [*((f"data_batch_{i}", TRAIN_PER_BATCH) for i in range(1, 6)),
                    ("test_batch", TEST_IMAGES)]:  # fmt: skip
        data, labels = images(rng, tmpl, n)
        with (folder / name).open("wb") as f:
            pickle.dump({"data": data, "labels": labels, "batch_label": name}, f)
    with (folder / "batches.meta").open("wb") as f:
        pickle.dump({"label_names": [f"class{c}" for c in range(CLASSES)]}, f)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path, help="the folder to hold cifar-10-batches-py/")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(write(args.root, args.seed))


if __name__ == "__main__":
    main()
