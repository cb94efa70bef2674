"""The on-disk loaders on fixtures written in each real format: LEAF's JSON, torchvision's
CIFAR pickles, a Hugging Face save_to_disk folder."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

import greenfl
from greenfl.config import RunConfig, build_config
from greenfl.core.errors import DataError
from greenfl.factories import dataset_for


def _cfg(data: dict) -> RunConfig:
    return build_config({"data": data, "train": {"clients_per_round": 2}})


def _leaf_fixture(root: Path, users: int = 6) -> dict[str, dict[str, list]]:
    """LEAF's layout: train/ and test/ of JSON files with users, num_samples, user_data."""
    rng = np.random.default_rng(0)
    truth: dict[str, dict[str, list]] = {}
    for split, per_user in (("train", 12), ("test", 3)):
        (root / split).mkdir(parents=True)
        for f in range(2):  # users spread over two files, as LEAF writes them
            names = [f"f{u:04d}" for u in range(users) if u % 2 == f]
            doc = {"users": names, "num_samples": [], "user_data": {}}
            for name in names:
                n = per_user + int(name[-1])
                x = rng.random((n, 784)).round(3).tolist()
                y = rng.integers(0, 62, n).tolist()
                doc["num_samples"].append(n)
                doc["user_data"][name] = {"x": x, "y": y}
                truth.setdefault(name, {})[split] = [x, y]
            (root / split / f"all_data_{f}_niid_0_keep_0_{split}_9.json").write_text(
                json.dumps(doc)
            )
    return truth


def test_femnist_reads_leafs_json_with_its_own_user_split(tmp_path: Path) -> None:
    truth = _leaf_fixture(tmp_path)
    cfg = _cfg({"dataset": "femnist", "path": str(tmp_path), "num_clients": 4})
    ds = dataset_for(cfg.data, 0)
    assert (ds.num_clients, ds.input_shape, ds.num_classes) == (4, (1, 28, 28), 62)
    seen = set()
    for c in range(4):
        x, y = ds.client_data(c)
        tx, ty = ds.client_test_data(c)
        user = next(u for u in truth if truth[u]["train"][1] == y.tolist())
        seen.add(user)
        assert np.allclose(x.reshape(len(y), -1).numpy(), np.asarray(truth[user]["train"][0]))
        assert ty.tolist() == truth[user]["test"][1]
        assert len(y) == 12 + int(user[-1])
    assert len(seen) == 4
    assert len(ds.test_data()[1]) == sum(len(ds.client_test_data(c)[1]) for c in range(4))


def test_leaf_sample_split_pools_and_holds_out_test_fraction(tmp_path: Path) -> None:
    truth = _leaf_fixture(tmp_path)
    data = {"dataset": "leaf", "path": str(tmp_path), "num_clients": 6,
            "params": {"split": "sample"}, "test_fraction": 0.25}  # fmt: skip
    ds = dataset_for(_cfg(data).data, 1)
    assert ds.input_shape == (784,) and ds.num_classes <= 62
    total = sorted(15 + 2 * int(u[-1]) for u in truth)  # 12 + 3 rows, each + the user index
    sizes = sorted(len(ds.client_data(c)[1]) + len(ds.client_test_data(c)[1]) for c in range(6))
    assert sizes == total
    for c in range(6):
        n = len(ds.client_data(c)[1]) + len(ds.client_test_data(c)[1])
        assert len(ds.client_test_data(c)[1]) == round(n * 0.25)


def test_leaf_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="preprocess.sh"):
        dataset_for(_cfg({"dataset": "femnist", "path": str(tmp_path)}).data, 0)
    _leaf_fixture(tmp_path)
    cfg = _cfg({"dataset": "femnist", "path": str(tmp_path), "num_clients": 7})
    with pytest.raises(DataError, match="6 LEAF users"):
        dataset_for(cfg.data, 0)
    (tmp_path / "train" / "bad.json").write_text('{"users": ["a"]}')
    cfg = _cfg({"dataset": "femnist", "path": str(tmp_path), "num_clients": 2})
    with pytest.raises(DataError, match="bad.json is not a LEAF JSON"):
        dataset_for(cfg.data, 0)


def test_femnist_fixture_trains_end_to_end_with_its_cnn(tmp_path: Path) -> None:
    _leaf_fixture(tmp_path / "leaf")
    cfg = build_config(
        {
            "data": {"dataset": "femnist", "path": str(tmp_path / "leaf"), "num_clients": 6},
            "train": {"rounds": 1, "clients_per_round": 3, "batch_size": 4},
            # every round (femnist's own default is every 5th)
            "eval": {"every": 1, "clients": 6},
            "report": {"html": False},
        }
    )
    result = greenfl.run(cfg, tmp_path / "run")
    assert result.summary["rounds_completed"] == 1
    assert result.summary["client_accuracy"]["mean"] is not None


def _cifar_fixture(root: Path, name: str = "cifar10") -> tuple[np.ndarray, np.ndarray]:
    """torchvision's layout: pickled dicts of uint8 rows (3072 = R, G, B planes) and labels."""
    rng = np.random.default_rng(2)
    folder, files, key, classes = (
        (
            "cifar-10-batches-py",
            [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"],
            "labels",
            10,
        )
        if name == "cifar10"
        else ("cifar-100-python", ["train", "test"], "fine_labels", 100)
    )
    (root / folder).mkdir(parents=True)
    rows, labels = [], []
    for f in files:
        data = rng.integers(0, 256, (20, 3072), dtype=np.uint8)
        y = rng.integers(0, classes, 20).tolist()
        with (root / folder / f).open("wb") as out:
            pickle.dump({"batch_label": f, key: y, "data": data}, out, protocol=2)
        rows.append(data)
        labels.append(y)
    return np.concatenate(rows), np.concatenate(labels)


def test_cifar10_reads_torchvisions_batches(tmp_path: Path) -> None:
    rows, labels = _cifar_fixture(tmp_path)
    data = {"dataset": "cifar10", "path": str(tmp_path), "num_clients": 5, "partition": "dirichlet"}
    ds = dataset_for(_cfg(data).data, 0)
    assert (ds.input_shape, ds.num_classes) == ((3, 32, 32), 10)
    assert int(ds.client_sizes().sum()) == 100  # five training batches of 20
    # by hand: scale to [0, 1], then each channel by the training set's mean and std
    train = rows[:100].reshape(100, 3, 32, 32) / 255.0
    mean, std = train.mean(axis=(0, 2, 3)), train.std(axis=(0, 2, 3))
    x_test, y_test = ds.test_data()
    want = (rows[100:].reshape(20, 3, 32, 32) / 255.0 - mean[None, :, None, None]) / std[
        None, :, None, None
    ]
    assert np.allclose(x_test.numpy(), want, atol=1e-5)
    assert y_test.tolist() == labels[100:].tolist()


def test_cifar100_uses_fine_labels(tmp_path: Path) -> None:
    _, labels = _cifar_fixture(tmp_path, "cifar100")
    data = {"dataset": "cifar100", "path": str(tmp_path), "num_clients": 2}
    ds = dataset_for(_cfg(data).data, 0)
    assert ds.num_classes == 100 and ds.test_data()[1].tolist() == labels[20:].tolist()


class _Evil:
    def __reduce__(self) -> tuple:
        return (os.system, ("echo pwned",))


def test_cifar_refuses_a_pickle_that_would_run_code(tmp_path: Path) -> None:
    _cifar_fixture(tmp_path)
    with (tmp_path / "cifar-10-batches-py" / "data_batch_3").open("wb") as out:
        pickle.dump({"data": _Evil(), "labels": []}, out)
    data = {"dataset": "cifar10", "path": str(tmp_path), "num_clients": 2}
    with pytest.raises(DataError, match="refusing to unpickle"):
        dataset_for(_cfg(data).data, 0)
    with pytest.raises(DataError, match="download=True"):
        data["path"] = str(tmp_path / "nowhere")
        dataset_for(_cfg(data).data, 0)


def _hf_fixture(path: Path, with_test: bool) -> dict[str, list]:
    datasets = pytest.importorskip("datasets")
    rng = np.random.default_rng(3)
    n = 60
    cols = {
        "pixels": rng.integers(0, 256, (n, 4, 4)).astype(np.uint8).tolist(),
        "label": rng.integers(0, 3, n).tolist(),
        "writer": [f"w{i % 5}" for i in range(n)],
    }
    train = datasets.Dataset.from_dict(cols)
    if with_test:
        test = datasets.Dataset.from_dict({k: v[:15] for k, v in cols.items()})
        datasets.DatasetDict({"train": train, "test": test}).save_to_disk(str(path))
    else:
        train.save_to_disk(str(path))
    return cols


def test_hf_natural_id_partition(tmp_path: Path) -> None:
    cols = _hf_fixture(tmp_path / "ds", with_test=True)
    data = {"dataset": "hf", "path": str(tmp_path / "ds"), "num_clients": 5, "natural_id": "writer"}
    ds = dataset_for(_cfg(data).data, 0)
    assert (ds.input_shape, ds.num_classes) == ((1, 4, 4), 3)
    for c in range(5):  # client c is writer w{c}: every 5th row, scaled to [0, 1]
        x, y = ds.client_data(c)
        rows = [i for i in range(60) if i % 5 == c]
        assert y.tolist() == [cols["label"][i] for i in rows]
        assert np.allclose(x.numpy()[:, 0], np.asarray([cols["pixels"][i] for i in rows]) / 255.0)
        assert ds.client_test_data(c)[1].tolist() == [
            cols["label"][i] for i in range(15) if i % 5 == c
        ]


def test_hf_without_natural_id_or_test_split(tmp_path: Path) -> None:
    _hf_fixture(tmp_path / "ds", with_test=False)
    data = {"dataset": "hf", "path": str(tmp_path / "ds"), "num_clients": 4, "partition": "iid",
            "test_fraction": 0.25, "feature_column": "pixels"}  # fmt: skip
    ds = dataset_for(_cfg(data).data, 0)
    assert int(ds.client_sizes().sum()) == 45 and len(ds.test_data()[1]) == 15
    data["label_column"] = "nope"
    with pytest.raises(DataError, match="'nope' is not a column"):
        dataset_for(_cfg(data).data, 0)
    data.update(label_column="label", path=str(tmp_path / "missing"))
    with pytest.raises(DataError, match="save_to_disk"):
        dataset_for(_cfg(data).data, 0)


def test_on_disk_datasets_need_a_path() -> None:
    from greenfl.core.errors import ConfigError

    with pytest.raises(ConfigError, match="data.path"):
        _cfg({"dataset": "cifar10"})
