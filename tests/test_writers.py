"""femnist_writers: shapes and sizes, a client's data derived on demand by index, the fixed
alphabet, each writer's style (checked through the ink's moments), held-out writers for the
central test set, and the point of it all: a model trained on few writers generalises worse
to people it never saw than one trained on as many samples from many writers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from greenfl.config.run import build_config
from greenfl.core.threads import torch_threads
from greenfl.data import DATASETS, make
from greenfl.data.base import DataSettings, FederatedDataset
from greenfl.data.writers import (
    NUM_CLASSES,
    SIDE,
    TEST_PER_HELD_OUT,
    WritersDataset,
    alphabet,
    draw_style,
    render,
    write,
)
from greenfl.factories.data import dataset_for, model_name_for
from greenfl.models.builtin import cnn


def test_shapes_labels_and_sizes() -> None:
    ds = make("femnist_writers", DataSettings(num_clients=6, seed=3), samples_per_writer=40)
    assert isinstance(ds, FederatedDataset)
    assert (ds.input_shape, ds.num_classes) == ((1, SIDE, SIDE), 62)
    for c in range(6):
        x, y = ds.client_data(c)
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape == (int(ds.client_sizes()[c]), 1, 28, 28) and len(y) == len(x)
        assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
        assert 0 <= int(y.min()) and int(y.max()) < 62
        tx, ty = ds.client_test_data(c)
        # test_fraction 0.2 of all a writer's samples: a quarter of their training count
        assert len(ty) == max(10, round(ds.client_sizes()[c] * 0.25)) == len(tx)
    x, y = ds.test_data()
    assert len(y) == 100 * TEST_PER_HELD_OUT and x.shape[1:] == (1, 28, 28)


def test_client_sizes_follow_leaf_spread_around_the_mean() -> None:
    sizes = WritersDataset(20_000, 0, samples_per_writer=200).client_sizes()
    assert sizes.dtype == np.int64
    assert sizes.mean() == pytest.approx(200, rel=0.02)
    assert sizes.std() / sizes.mean() == pytest.approx(88.94 / 226.83, rel=0.05)  # LEAF's
    assert sizes.min() >= 10 and sizes.max() <= 600
    tiny = WritersDataset(2_000, 0, samples_per_writer=10).client_sizes()
    assert tiny.min() == 10  # the floor holds where the normal would go below it


def test_client_data_is_derived_by_index_whatever_the_order() -> None:
    forward = WritersDataset(8, 5)
    backward = WritersDataset(8, 5)
    seen_b = {c: backward.client_data(c) for c in reversed(range(8))}
    backward.test_data()
    for c in range(8):
        xf, yf = forward.client_data(c)
        assert torch.equal(xf, seen_b[c][0]) and torch.equal(yf, seen_b[c][1])
        assert torch.equal(forward.client_test_data(c)[0], backward.client_test_data(c)[0])
    # a bigger population holds the same first writers: a client is its own stream
    assert torch.equal(WritersDataset(50, 5).client_data(3)[0], forward.client_data(3)[0])
    other = WritersDataset(8, 6)
    assert not torch.equal(other.client_data(0)[0][:5], forward.client_data(0)[0][:5])


def test_the_alphabet_is_fixed_and_its_glyphs_distinct() -> None:
    a = alphabet()
    assert a.shape == (62, 3, 3, 2) and np.array_equal(a, alphabet())
    eye = np.broadcast_to(np.eye(2), (62, 2, 2))
    img = render(a, eye, np.zeros((62, 2)), np.full(62, 0.9), np.ones(62)).reshape(62, -1)
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    sim = img @ img.T
    assert np.allclose(np.diag(sim), 1.0)
    assert sim[~np.eye(62, dtype=bool)].max() < 0.7
    # Two runs' seeds write the same letters: with no style and no noise, class 7 of seed 0
    # and of seed 1 differ only by the per-sample jitter
    calm = {"style_strength": 0.0, "noise_std": 0.0}
    means = []
    for seed in (0, 1):
        x, y = WritersDataset(1, seed, samples_per_writer=2000, **calm).client_data(0)
        means.append(x[y == 7].mean(0).numpy().ravel())
    assert np.corrcoef(means)[0, 1] > 0.95


def _ink_moments(img: np.ndarray) -> tuple[float, float, float]:
    """var(row), cov(row, column), total ink of a batch of images' mean."""
    w = img.reshape(-1, SIDE, SIDE).mean(0)
    rows, cols = np.mgrid[0:SIDE, 0:SIDE]
    total = w.sum()
    r0, c0 = (w * rows).sum() / total, (w * cols).sum() / total
    var_r = (w * (rows - r0) ** 2).sum() / total
    cov = (w * (rows - r0) * (cols - c0)).sum() / total
    return float(var_r), float(cov), float(total)


def _plain(**changes: float) -> object:
    """A writer with no style but ``changes`` and no noise."""
    base = draw_style(np.random.default_rng(0), 0.0, 0.0)
    return dataclasses.replace(base, **changes)


def test_slant_shears_the_ink_by_its_own_amount() -> None:
    labels = np.random.default_rng(1).integers(0, NUM_CLASSES, 3000)
    upright = write(_plain(), labels, np.random.default_rng(2))  # type: ignore[arg-type]
    slanted = write(_plain(slant=0.4), labels, np.random.default_rng(2))  # type: ignore[arg-type]
    var_r, cov0, _ = _ink_moments(upright)
    _, cov1, _ = _ink_moments(slanted)
    # x' = x + 0.4 y moves cov(row, col) by 0.4 var(row) (pen and saturation blur it a bit)
    assert cov1 - cov0 == pytest.approx(0.4 * var_r, rel=0.2)


def test_a_wider_pen_lays_more_ink_and_noise_shows_on_the_paper() -> None:
    labels = np.random.default_rng(1).integers(0, NUM_CLASSES, 500)
    thin = write(_plain(log_pen=np.log(0.6)), labels, np.random.default_rng(2))  # type: ignore[arg-type]
    wide = write(_plain(log_pen=np.log(1.5)), labels, np.random.default_rng(2))  # type: ignore[arg-type]
    # a stroke's ink across it grows with the pen's sigma (to 2.5 x before saturation)
    assert _ink_moments(wide)[2] > 1.5 * _ink_moments(thin)[2]
    corner = (slice(None), 0, slice(0, 3), slice(0, 3))  # paper no glyph reaches
    assert float(np.abs(thin[corner]).max()) < 1e-6
    noisy = write(_plain(noise=0.1), labels, np.random.default_rng(2))  # type: ignore[arg-type]
    # clipped at 0, N(0, 0.1) keeps its positive half: mean 0.1 / sqrt(2 pi)
    assert float(noisy[corner].mean()) == pytest.approx(0.1 / np.sqrt(2 * np.pi), rel=0.1)


def _half_means(ds: WritersDataset, writer: int) -> tuple[np.ndarray, np.ndarray]:
    x, _ = ds.client_data(writer)
    half = len(x) // 2
    return x[:half].mean(0).numpy().ravel(), x[half:].mean(0).numpy().ravel()


@pytest.mark.parametrize(("strength", "low", "high"), [(1.0, 2.0, np.inf), (0.0, 0.7, 1.4)])
def test_writers_differ_in_style_by_its_strength(strength: float, low: float, high: float) -> None:
    """The distance between two writers' mean images, over that between two halves of one
    writer's: far above 1 when styles differ (measured 4.1); about 1 (label mix alone:
    measured 1.08) when they do not."""
    ds = WritersDataset(12, 0, samples_per_writer=400, style_strength=strength)
    halves = [_half_means(ds, w) for w in range(12)]
    within = np.mean([np.linalg.norm(a - b) for a, b in halves])
    across = np.mean(
        [
            np.linalg.norm(halves[i][0] - halves[j][1])
            for i in range(12)
            for j in range(12)
            if i != j
        ]
    )
    assert low < across / within < high


def test_the_central_test_set_is_written_by_writers_outside_the_population(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ds = WritersDataset(5, 0, test_writers=30)
    asked: list[tuple[int, int]] = []
    real = WritersDataset._style  # noqa: SLF001 - whose hand writes the set is the point

    def spy(self: WritersDataset, who: int, index: int) -> object:
        asked.append((who, index))
        return real(self, who, index)

    monkeypatch.setattr(WritersDataset, "_style", spy)
    x, _ = ds.test_data()
    assert len(x) == 30 * TEST_PER_HELD_OUT
    assert asked == [(1, w) for w in range(30)]  # the held-out stream, never a client's
    held = [real(ds, 1, w) for w in range(30)]
    clients = [ds.style(c) for c in range(5)]
    assert all(h.rotation != c.rotation for h in held for c in clients)
    assert torch.equal(WritersDataset(500, 0, test_writers=30).test_data()[0], x)
    assert ds.test_data() is ds.test_data()  # generated once


def test_registered_with_femnist_round_defaults() -> None:
    source = DATASETS.lookup("femnist_writers")
    assert source.defaults.model == "femnist_cnn" and not source.reads_path
    cfg = build_config({"data": {"dataset": "femnist_writers", "num_clients": 12}})
    assert model_name_for(cfg) == "femnist_cnn"
    assert (cfg.train.batch_size, cfg.train.lr, cfg.train.clients_per_round) == (10, 0.06, 10)
    assert (cfg.eval.every, cfg.eval.clients) == (5, 50)
    ds = dataset_for(cfg.data, cfg.seed)
    assert ds.num_clients == 12 and ds.name == "femnist_writers"


# ---- generalisation to held-out writers ---------------------------------------------------
TOTAL = 900  # training samples either way: 3 writers x 300, or 30 writers x 30
STEPS = 300


def _pool(ds: WritersDataset, writers: int, total: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``total // writers`` samples from each of the first ``writers`` writers holding that
    many (sizes vary by writer)."""
    per = total // writers
    chosen = np.flatnonzero(ds.client_sizes() >= per)[:writers]
    assert len(chosen) == writers
    parts = [ds.client_data(int(w)) for w in chosen]
    return torch.cat([x[:per] for x, _ in parts]), torch.cat([y[:per] for _, y in parts])


def _held_out_accuracy(data: tuple[torch.Tensor, torch.Tensor], test: tuple, seed: int) -> float:
    """The cnn trained centrally, STEPS of SGD on batches of 32, then its test accuracy. One
    thread: on a shared 2-core machine two spin-waiting threads run several times slower."""
    with torch_threads(1):
        return _train_and_test(data, test, seed)


def _train_and_test(data: tuple[torch.Tensor, torch.Tensor], test: tuple, seed: int) -> float:
    torch.manual_seed(seed)
    model = cnn((1, SIDE, SIDE), NUM_CLASSES)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    draws = torch.Generator().manual_seed(seed)
    x, y = data
    for _ in range(STEPS):
        idx = torch.randint(0, len(y), (32,), generator=draws)
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float((model(test[0]).argmax(1) == test[1]).float().mean())


def _gap(seed: int, strength: float) -> float:
    ds = WritersDataset(40, seed, samples_per_writer=400, style_strength=strength, test_writers=200)
    test = ds.test_data()
    few = _held_out_accuracy(_pool(ds, 3, TOTAL), test, seed)
    many = _held_out_accuracy(_pool(ds, 30, TOTAL), test, seed)
    return many - few


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_few_writers_generalise_worse_to_held_out_writers(seed: int) -> None:
    """Measured: the gap is 0.125, 0.167, 0.162 for seeds 0-2 (0.10-0.18 over seeds 0-5).
    The assertion, 0.05, is half the smallest and over three standard errors of a gap
    measured on 2,000 held-out samples (about 0.015)."""
    assert _gap(seed, 1.0) > 0.05


def test_without_style_the_few_writers_gap_vanishes() -> None:
    """The control: writers alike (style_strength 0), three of them are as good as thirty
    (measured: -0.006 to 0.004 over seeds 0-2; both near 0.99)."""
    assert abs(_gap(0, 0.0)) < 0.03
