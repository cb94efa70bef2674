"""A million clients: columnar arrays, lazy data, nothing per client in Python objects."""

from __future__ import annotations

import gc
import sqlite3
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

import greenfl
from greenfl.data.synthetic import MAX_SAMPLES, MIN_SAMPLES, SyntheticDataset
from greenfl.factories import build_loop
from greenfl.fleet.catalog import load_fleet
from greenfl.fleet.population import Population

MILLION = 1_000_000


def _tracked_objects() -> int:
    gc.collect()
    return len(gc.get_objects())


def test_million_client_population_is_columnar_and_lean() -> None:
    fleet = load_fleet("builtin")
    sizes = np.full(MILLION, 20, dtype=np.int64)
    objects0 = _tracked_objects()
    tracemalloc.start()
    pop = Population.assign(fleet, sizes, seed=3)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # one Python object per client would add a million tracked objects (and ~100 MB)
    assert _tracked_objects() - objects0 < 1_000
    assert peak < 48 * 2**20, f"Population.assign peaked at {peak / 2**20:.1f} MB"
    assert pop.size == MILLION
    assert (pop.entry.dtype, pop.device.dtype, pop.network.dtype, pop.region.dtype) == (
        np.int32,
        np.int16,
        np.int16,
        np.int16,
    )
    columns = (pop.entry, pop.device, pop.network, pop.region, pop.num_samples)
    assert sum(c.nbytes for c in columns) == MILLION * (4 + 2 + 2 + 2 + 8)


def test_population_sampling_follows_the_shares_and_the_seed() -> None:
    fleet = load_fleet("builtin")
    sizes = np.full(MILLION, 20, dtype=np.int64)
    pop = Population.assign(fleet, sizes, seed=3)
    shares = np.array([e.share for e in fleet.population])
    observed = np.bincount(pop.entry, minlength=len(shares)) / MILLION
    # binomial standard error at 1M draws is <= 0.0005; 0.003 is > 6 sigma
    np.testing.assert_allclose(observed, shares / shares.sum(), atol=3e-3)
    # each client's device, network and region are those of its population entry
    for i in np.random.default_rng(0).integers(0, MILLION, 50):
        e = fleet.population[pop.entry[i]]
        assert pop.names(int(i)) == (e.device, e.network, e.region)
    again = Population.assign(fleet, sizes, seed=3)
    other = Population.assign(fleet, sizes, seed=4)
    assert np.array_equal(pop.entry, again.entry)
    assert (pop.entry != other.entry).mean() > 0.5


def test_million_client_synthetic_data_is_derived_by_index() -> None:
    objects0 = _tracked_objects()
    ds = SyntheticDataset(MILLION, seed=1, alpha=1.0, beta=1.0, mean_samples=20)
    assert _tracked_objects() - objects0 < 1_000
    sizes = ds.client_sizes()
    assert sizes.dtype == np.int64 and sizes.shape == (MILLION,)
    assert sizes.min() >= MIN_SAMPLES and sizes.max() <= MAX_SAMPLES
    # lognormal with mean 20 before clipping; clipping at 5 raises the mean a little
    assert 19.0 < sizes.mean() < 23.0
    x, y = ds.client_data(MILLION - 1)
    assert x.shape == (sizes[-1], 60) and y.shape == (sizes[-1],)
    x2, y2 = ds.client_data(MILLION - 1)
    assert torch.equal(x, x2) and torch.equal(y, y2)


def test_million_client_round_keeps_a_sparse_snapshot(tmp_path: Path) -> None:
    cfg = greenfl.build_config(
        {
            "data": {"dataset": "synthetic", "num_clients": MILLION},
            "train": {"rounds": 2, "clients_per_round": 20},
        }
    )
    loop = build_loop(cfg, tmp_path)
    loop.run()
    conn = sqlite3.connect(tmp_path / "ledger.sqlite")
    (blob,) = conn.execute("SELECT value FROM server_state WHERE key = 'loop'").fetchone()
    conn.close()
    # dense per-client arrays would be 12 MB; the sparse form holds the 40 clients seen
    assert len(blob) < 200_000
    st = loop.state
    fresh = build_loop(cfg)
    fresh.restore(blob)
    assert fresh.state.round == 2
    assert np.array_equal(fresh.state.participation, st.participation)
    assert np.array_equal(fresh.state.last_selected, st.last_selected)
    assert np.array_equal(fresh.state.last_loss, st.last_loss, equal_nan=True)
    assert int((st.last_selected == 2).sum()) == 20 and int(st.participation.sum()) == 40
    assert torch.equal(fresh.state.global_params, st.global_params)


@pytest.mark.parametrize("availability", ["always", "diurnal"])
def test_random_selection_among_a_million(availability: str) -> None:
    from datetime import datetime, timezone

    from greenfl.fleet.population import available
    from greenfl.selection.base import SelectionContext
    from greenfl.selection.random import RandomSelector

    fleet = load_fleet("builtin")
    pop = Population.assign(fleet, np.full(MILLION, 20, dtype=np.int64), seed=0)
    rng = np.random.default_rng(0)
    cand = available(pop, datetime(2026, 1, 15, 3, tzinfo=timezone.utc), availability, rng)
    ctx = SelectionContext(
        1,
        0.0,
        pop,
        np.zeros(MILLION, np.int32),
        np.full(MILLION, -1, np.int32),
        np.full(MILLION, np.nan, np.float32),
    )
    chosen = RandomSelector().select(cand, 1000, ctx, rng)
    assert len(chosen) == 1000 == len(np.unique(chosen))
    assert np.isin(chosen, cand).all()
