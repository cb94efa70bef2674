import numpy as np
import pytest

from greenfl.config import build_config
from greenfl.core.errors import DataError
from greenfl.data.partition import dirichlet, iid, shard
from greenfl.data.synthetic import SyntheticDataset
from greenfl.factories import dataset_for

LABELS = np.repeat(np.arange(10), 100)


def _label_entropy(labels: np.ndarray, part) -> float:  # noqa: ANN001
    ent = []
    for c in range(part.num_clients):
        counts = np.bincount(labels[part.of(c)], minlength=10)
        p = counts[counts > 0] / counts.sum()
        ent.append(-(p * np.log(p)).sum())
    return float(np.mean(ent))


@pytest.mark.parametrize(
    "make",
    [
        lambda s: iid(LABELS, 50, s),
        lambda s: dirichlet(LABELS, 50, 0.1, s),
        lambda s: shard(LABELS, 50, 2, s),
    ],
)
def test_partitions_cover_everything_once_and_are_deterministic(make) -> None:  # noqa: ANN001
    a, b, c = make(0), make(0), make(1)
    assert np.array_equal(np.sort(a.indices), np.arange(len(LABELS)))
    assert a.sizes().sum() == len(LABELS)
    assert a.sizes().min() >= 1
    assert np.array_equal(a.indices, b.indices) and np.array_equal(a.offsets, b.offsets)
    assert not np.array_equal(a.indices, c.indices)


def test_dirichlet_skew_grows_as_alpha_falls() -> None:
    entropies = [_label_entropy(LABELS, dirichlet(LABELS, 50, a, 0)) for a in (100.0, 1.0, 0.05)]
    assert entropies[0] > entropies[1] > entropies[2]
    assert entropies[0] > 1.9  # near log(10) = 2.30: almost uniform labels


def test_dirichlet_gives_every_client_a_sample_even_when_extreme() -> None:
    part = dirichlet(LABELS, 400, 0.01, 3)
    assert part.sizes().min() >= 1 and part.sizes().sum() == len(LABELS)


def test_shard_limits_classes_per_client() -> None:
    part = shard(LABELS, 50, 2, 0)
    classes = [len(np.unique(LABELS[part.of(c)])) for c in range(50)]
    assert max(classes) <= 2 + 1  # a shard can straddle a class boundary


def test_too_many_clients_is_a_data_error() -> None:
    with pytest.raises(DataError, match="num_clients"):
        iid(LABELS, 5000, 0)


def test_digits_has_held_out_test_split() -> None:
    ds = dataset_for(build_config({}).data, 0)
    x_test, y_test = ds.test_data()
    assert len(y_test) == 360 and ds.client_sizes().sum() == 1797 - 360
    x, y = ds.client_data(0)
    assert x.shape[1] == 64 and float(x.max()) <= 1.0


def test_synthetic_sizes_are_heavy_tailed_and_lazy() -> None:
    ds = SyntheticDataset(10_000, seed=0, alpha=1.0, beta=1.0, mean_samples=20)
    sizes = ds.client_sizes()
    assert sizes.min() >= 5 and sizes.max() <= 444
    assert 15 < sizes.mean() < 25
    assert np.median(sizes) < sizes.mean()  # right-skewed
    x1, y1 = ds.client_data(1234)
    x2, y2 = ds.client_data(1234)
    assert len(y1) == sizes[1234] and x1.shape[1] == 60
    assert np.array_equal(x1.numpy(), x2.numpy()) and np.array_equal(y1.numpy(), y2.numpy())


def _mean_feature_spread(beta: float) -> float:
    ds = SyntheticDataset(200, seed=0, alpha=0.0, beta=beta, mean_samples=40)
    means = np.stack([ds.client_data(c)[0].numpy().mean(0) for c in range(200)])
    return float(means.mean(1).std())


def _label_disagreement(alpha: float) -> float:
    ds = SyntheticDataset(200, seed=0, alpha=alpha, beta=0.0, mean_samples=40)
    dominant = [
        np.bincount(ds.client_data(c)[1].numpy(), minlength=10).argmax() for c in range(200)
    ]
    return float(len(np.unique(dominant)))


def test_synthetic_heterogeneity_follows_alpha_and_beta() -> None:
    assert _mean_feature_spread(5.0) > 2 * _mean_feature_spread(0.0)
    assert _label_disagreement(5.0) >= _label_disagreement(0.0)


def test_synthetic_fedprox_sizes_follow_the_authors_lognormal() -> None:
    from greenfl.data.synthetic import SyntheticDataset

    sizes = SyntheticDataset(20000, 0, 1.0, 1.0, 20.0, sizes="fedprox").client_sizes()
    # lognormal(4, 2) + 50: median e^4 + 50, mean e^(4 + 2^2/2) + 50, never under 50
    assert sizes.min() >= 50
    assert np.median(sizes) == pytest.approx(np.exp(4) + 50, rel=0.05)
    assert sizes.mean() == pytest.approx(np.exp(6) + 50, rel=0.15)


def test_synthetic_alpha_is_a_standard_deviation_as_the_authors_use_it() -> None:
    from greenfl.data.synthetic import SyntheticDataset

    ds = SyntheticDataset(4000, 0, alpha=3.0, beta=0.0, mean_samples=20.0)
    # W_k ~ N(u_k, 1) with u_k ~ N(0, alpha): the mean of W_k's 600 entries estimates u_k
    means = [ds._client_model(np.random.default_rng([0, c]))[0].mean() for c in range(4000)]
    assert np.std(means) == pytest.approx(np.sqrt(9.0 + 1 / 600), rel=0.05)  # not sqrt(3)
