"""A client's own data directory (greenfl join --data-dir): the format, and each bad input
as a DataError naming the file and the problem."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from greenfl.cli import main
from greenfl.core.errors import DataError
from greenfl.data.base import FederatedDataset
from greenfl.data.local_dir import LocalDirDataset, write_local_dir


def _xy(n: int = 12, features: tuple[int, ...] = (64,), classes: int = 10):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, *features)).astype(np.float32)
    y = (np.arange(n) % classes).astype(np.int64)
    return x, y


def test_npz_round_trip_through_the_dataset_protocol(tmp_path: Path) -> None:
    x, y = _xy(12)
    xt, yt = _xy(5)
    write_local_dir(tmp_path, x, y, xt, yt)
    ds = LocalDirDataset.load(tmp_path).for_model((64,), 10)
    assert isinstance(ds, FederatedDataset)
    assert ds.num_clients == 1 and ds.input_shape == (64,) and ds.num_classes == 10
    assert ds.client_sizes().tolist() == [12]
    cx, cy = ds.client_data(0)
    assert cx.dtype == torch.float32 and cy.dtype == torch.int64
    assert torch.equal(cx, torch.from_numpy(x)) and torch.equal(cy, torch.from_numpy(y))
    tx, ty = ds.test_data()
    assert torch.equal(ty, torch.from_numpy(yt)) and tx.shape == (5, 64)


def test_npy_folder_and_integer_features(tmp_path: Path) -> None:
    x = np.arange(6 * 4, dtype=np.uint8).reshape(6, 2, 2)  # pixels as bytes: cast to float
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.array([0, 1, 2, 0, 1, 2], dtype=np.int32))
    ds = LocalDirDataset.load(tmp_path).for_model((2, 2), 3)
    cx, cy = ds.client_data(0)
    assert cx.dtype == torch.float32 and cx[5, 1, 1] == 23.0
    assert cy.tolist() == [0, 1, 2, 0, 1, 2]
    with pytest.raises(DataError, match="no test.npz"):
        ds.test_data()


def _err(tmp_path: Path, **arrays: np.ndarray) -> str:
    np.savez(tmp_path / "data.npz", **arrays)
    with pytest.raises(DataError) as info:
        LocalDirDataset.load(tmp_path)
    return str(info.value)


@pytest.mark.parametrize(
    ("arrays", "pattern"),
    [
        ({"x": np.zeros((0, 64), np.float32), "y": np.zeros(0, np.int64)}, "no samples"),
        ({"features": np.zeros((3, 64)), "y": np.zeros(3, np.int64)}, r"no array 'x'.*features"),
        ({"x": np.zeros((3, 64))}, "no array 'y'"),
        ({"x": np.zeros(3), "y": np.zeros(3, np.int64)}, r"shape \[3\]; expected \[samples"),
        ({"x": np.array([["a"]] * 3), "y": np.zeros(3, np.int64)}, "features must be float"),
        ({"x": np.zeros((3, 64)), "y": np.zeros(3)}, "labels must be integers"),
        ({"x": np.zeros((3, 64)), "y": np.zeros(2, np.int64)}, r"one label per sample.*\[3\]"),
        ({"x": np.zeros((3, 64)), "y": np.array([0, -1, 2])}, "label -1; labels must be >= 0"),
    ],
)
def test_each_bad_file_names_the_file_and_the_problem(
    tmp_path: Path, arrays: dict[str, np.ndarray], pattern: str
) -> None:
    msg = _err(tmp_path, **arrays)
    assert str(tmp_path / "data.npz") in msg
    assert re.search(pattern, msg), msg


def test_non_finite_values_name_the_first_bad_sample(tmp_path: Path) -> None:
    x, y = _xy(10)
    x[7, 3] = np.nan
    x[9, 0] = np.inf
    msg = _err(tmp_path, x=x, y=y)
    assert "non-finite values (NaN or inf) in 2 samples, first at sample 7" in msg


def test_model_checks_shape_and_label_range(tmp_path: Path) -> None:
    x, y = _xy(10, features=(8, 8), classes=10)
    write_local_dir(tmp_path, x, y)
    ds = LocalDirDataset.load(tmp_path)
    with pytest.raises(DataError, match=r"feature shape \[8, 8\], the model takes \[64\]") as e:
        ds.for_model((64,), 10, "the model")
    assert "x.reshape(len(x), 64)" in str(e.value)  # same size: says how to fix it
    with pytest.raises(DataError, match=r"y has label 9; the model has 5 classes.*\[0, 5\)"):
        ds.for_model((8, 8), 5, "the model")
    assert ds.for_model((8, 8), 12).num_classes == 12  # labels may leave classes unused


def test_test_file_is_checked_too(tmp_path: Path) -> None:
    x, y = _xy(10)
    write_local_dir(tmp_path, x, y)
    np.savez(tmp_path / "test.npz", x=np.zeros((4, 32), np.float32), y=np.zeros(4, np.int64))
    with pytest.raises(DataError, match=r"test.npz: x has feature shape \[32\].*has \[64\]"):
        LocalDirDataset.load(tmp_path)
    np.savez(tmp_path / "test.npz", x=np.zeros((4, 64), np.float32), y=np.full(4, 11))
    with pytest.raises(DataError, match=r"test.npz: y has label 11"):
        LocalDirDataset.load(tmp_path).for_model((64,), 10)


def test_missing_or_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such directory"):
        LocalDirDataset.load(tmp_path / "nope")
    with pytest.raises(DataError, match=r"holds neither data.npz nor x.npy \+ y.npy"):
        LocalDirDataset.load(tmp_path)
    (tmp_path / "data.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="data.npz: cannot read it as a numpy .npz file"):
        LocalDirDataset.load(tmp_path)
    (tmp_path / "data.npz").unlink()
    np.save(tmp_path / "x.npy", np.zeros((2, 3)))
    with pytest.raises(DataError, match=r"y.npy: missing"):
        LocalDirDataset.load(tmp_path)
    # Pickled object arrays are never loaded (they could run code).
    np.save(tmp_path / "y.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="y.npy: cannot read"):
        LocalDirDataset.load(tmp_path)


def test_join_reports_a_bad_data_dir_before_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x, y = _xy(4)
    x[0, 0] = np.nan
    write_local_dir(tmp_path, x, y)
    # Nothing listens on port 9: had it tried to connect, it would wait, not fail at once.
    code = main(["join", "--server", "127.0.0.1:9", "--client-id", "0",
                 "--data-dir", str(tmp_path), "--retry-for-s", "1"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: ") and "data.npz" in err[0]
    assert "non-finite" in err[0]


def test_export_partition_writes_what_join_reads(tmp_path: Path) -> None:
    out = tmp_path / "c3"
    code = main(["export-partition", "--set", "data.num_clients=10", "--client-id", "3",
                 "--out", str(out)])  # fmt: skip
    assert code == 0
    from greenfl.config import load_config
    from greenfl.factories import dataset_for

    cfg = load_config(None, ["data.num_clients=10"])
    x, y = dataset_for(cfg.data, cfg.seed).client_data(3)
    ds = LocalDirDataset.load(out).for_model((64,), 10)
    cx, cy = ds.client_data(0)
    assert torch.equal(cx, x) and torch.equal(cy, y)
    assert ds.test is not None and len(ds.test.y) > 300  # digits' held-out 20%
    assert main(["export-partition", "--client-id", "100", "--out", str(out)]) == 2
