"""A real client's own data on disk: ``greenfl join --data-dir DIR``.

The format is plain numpy, so any pipeline can write it:

    DIR/data.npz     arrays x (float or integer, shape [n, *features]) and y (integer labels, [n])
    DIR/test.npz     optional, the same two arrays: local evaluation of the global model

or, instead of the ``.npz`` files, ``x.npy`` + ``y.npy`` (and ``x_test.npy`` + ``y_test.npy``).
Write one with ``np.savez(DIR / "data.npz", x=x, y=y)``, with ``write_local_dir`` below, or
with ``greenfl export-partition`` (partition N of a configured dataset).

Checks come in two steps, each a DataError naming the file: ``LocalDirDataset.load`` checks
what the files alone can tell (present, readable, numeric, non-empty, finite, one integer
label >= 0 per sample), before the client connects; ``for_model`` checks them against the
run's model (feature shape, labels below its number of classes), which the client learns
from the server when it joins."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from greenfl.core.errors import DataError

DATA_NPZ = "data.npz"
TEST_NPZ = "test.npz"
# The same splits as loose arrays: (x file, y file).
DATA_NPY = ("x.npy", "y.npy")
TEST_NPY = ("x_test.npy", "y_test.npy")


@dataclass(frozen=True)
class LocalSplit:
    """One split's checked arrays and the file(s) they came from (named in errors)."""

    x: np.ndarray  # float32, [n, *features]
    y: np.ndarray  # int64, [n]
    source: str

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x.shape[1:])


class LocalDirDataset:
    """The FederatedDataset of one client holding its own data: ``num_clients = 1`` and
    ``client_data(0)`` is the local training data, so the trainer code is the one every
    other dataset uses."""

    name = "local"
    num_clients = 1

    def __init__(self, root: Path, train: LocalSplit, test: LocalSplit | None, num_classes: int):
        self.root = root
        self.train = train
        self.test = test
        self.input_shape = train.feature_shape
        self.num_classes = num_classes

    @classmethod
    def load(cls, root: str | Path) -> LocalDirDataset:
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"--data-dir {root}: no such directory")
        train = _read_split(root, DATA_NPZ, DATA_NPY)
        if train is None:
            raise DataError(
                f"--data-dir {root}: holds neither {DATA_NPZ} nor {DATA_NPY[0]} + {DATA_NPY[1]}"
            )
        test = _read_split(root, TEST_NPZ, TEST_NPY)
        if test is not None and test.feature_shape != train.feature_shape:
            raise DataError(
                f"{test.source}: x has feature shape {list(test.feature_shape)}, "
                f"but {train.source} has {list(train.feature_shape)}"
            )
        return cls(root, train, test, int(train.y.max()) + 1)

    def for_model(
        self, input_shape: tuple[int, ...], num_classes: int, model: str = "the run's model"
    ) -> LocalDirDataset:
        """This data checked against the model it will train: the same feature shape, labels
        in [0, num_classes). Returns the dataset with the model's number of classes."""
        want = tuple(int(d) for d in input_shape)
        for split in (self.train, self.test):
            if split is None:
                continue
            if split.feature_shape != want:
                hint = ""
                if int(np.prod(split.feature_shape)) == int(np.prod(want)):
                    hint = f" (reshape it: x.reshape(len(x), {', '.join(map(str, want))}))"
                raise DataError(
                    f"{split.source}: x has feature shape {list(split.feature_shape)}, "
                    f"{model} takes {list(want)}{hint}"
                )
            top = int(split.y.max())
            if top >= num_classes:
                raise DataError(
                    f"{split.source}: y has label {top}; {model} has {num_classes} classes, "
                    f"so labels must be in [0, {num_classes})"
                )
        return LocalDirDataset(self.root, self.train, self.test, int(num_classes))

    # ---- the FederatedDataset protocol ------------------------------------------------
    def client_sizes(self) -> np.ndarray:
        return np.array([len(self.train.y)], dtype=np.int64)

    def client_data(self, client_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        if client_id != 0:
            raise DataError(f"a local data directory holds one client (0), not {client_id}")
        return torch.from_numpy(self.train.x), torch.from_numpy(self.train.y)

    def client_test_data(self, client_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A machine's own test split is its client test data."""
        if client_id != 0:
            raise DataError(f"a local data directory holds one client (0), not {client_id}")
        return self.test_data()

    def test_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.test is None:
            raise DataError(f"--data-dir {self.root}: no {TEST_NPZ} (or {' + '.join(TEST_NPY)})")
        return torch.from_numpy(self.test.x), torch.from_numpy(self.test.y)


def write_local_dir(
    root: str | Path,
    x: np.ndarray,
    y: np.ndarray,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
) -> Path:
    """Write ``data.npz`` (and ``test.npz`` when given) in the format ``load`` reads."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / DATA_NPZ, x=np.asarray(x, np.float32), y=np.asarray(y, np.int64))
    if x_test is not None and y_test is not None:
        np.savez(root / TEST_NPZ, x=np.asarray(x_test, np.float32), y=np.asarray(y_test, np.int64))
    return root


def _read_split(root: Path, npz_name: str, npy_names: tuple[str, str]) -> LocalSplit | None:
    npz = root / npz_name
    x_path, y_path = root / npy_names[0], root / npy_names[1]
    if npz.is_file():
        try:
            with np.load(npz, allow_pickle=False) as arrays:
                missing = [k for k in ("x", "y") if k not in arrays.files]
                if missing:
                    raise DataError(
                        f"{npz}: no array {' or '.join(repr(k) for k in missing)} "
                        f"(it holds {', '.join(arrays.files) or 'nothing'}); "
                        "write it with np.savez(path, x=features, y=labels)"
                    )
                x, y = arrays["x"], arrays["y"]
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise DataError(f"{npz}: cannot read it as a numpy .npz file: {exc}") from None
        return _check(x, y, str(npz), str(npz))
    if x_path.is_file() or y_path.is_file():
        for p in (x_path, y_path):
            if not p.is_file():
                raise DataError(f"{p}: missing (x and y come in pairs)")
        x, y = _load_npy(x_path), _load_npy(y_path)
        return _check(x, y, str(x_path), str(y_path))
    return None


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: cannot read it as a numpy .npy file: {exc}") from None


def _check(x: np.ndarray, y: np.ndarray, x_src: str, y_src: str) -> LocalSplit:
    source = x_src if x_src == y_src else f"{x_src} + {y_src}"
    if x.dtype.kind not in "fiu":
        raise DataError(f"{x_src}: x has dtype {x.dtype}; features must be float (or integer)")
    if x.ndim < 2:
        raise DataError(f"{x_src}: x has shape {list(x.shape)}; expected [samples, features...]")
    if len(x) == 0:
        raise DataError(f"{x_src}: x holds no samples")
    if y.dtype.kind not in "iu":
        raise DataError(
            f"{y_src}: y has dtype {y.dtype}; labels must be integers (y.astype(np.int64))"
        )
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(
            f"{y_src}: y has shape {list(y.shape)}; expected one label per sample of x, [{len(x)}]"
        )
    xf = np.ascontiguousarray(x, dtype=np.float32)
    finite = np.isfinite(xf).reshape(len(xf), -1).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise DataError(
            f"{x_src}: x has non-finite values (NaN or inf) in {len(bad)} samples, "
            f"first at sample {int(bad[0])}"
        )
    if int(y.min()) < 0:
        raise DataError(f"{y_src}: y has label {int(y.min())}; labels must be >= 0")
    return LocalSplit(xf, np.ascontiguousarray(y, dtype=np.int64), source)
