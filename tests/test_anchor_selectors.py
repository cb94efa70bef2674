"""The anchors' policies as baselines: FedZero-style and AutoFL-style selection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import greenfl
from greenfl.config import RunConfig
from greenfl.core.errors import ConfigError
from greenfl.core.units import J_PER_KWH
from greenfl.factories import selector_for
from greenfl.fleet import Population, load_fleet
from greenfl.ledger import read_ledger
from greenfl.selection.autofl import AutoFLParams, AutoFLSelector
from greenfl.selection.base import SelectionContext
from greenfl.selection.fedzero import FedZeroParams, FedZeroSelector
from tests.fleets import write_fleet


def _ctx(n: int, round_idx: int = 1, **arrays: np.ndarray) -> SelectionContext:
    pop = Population.assign(load_fleet("builtin"), np.full(n, 10), 0)
    return SelectionContext(
        round_idx=round_idx,
        now_s=0.0,
        population=pop,
        participation=arrays.get("participation", np.zeros(n, np.int32)),
        last_selected=np.full(n, -1, np.int32),
        last_loss=arrays.get("last_loss", np.full(n, np.nan, np.float32)),
        est_energy_j=arrays["est_energy_j"],
        est_carbon_g=arrays["est_carbon_g"],
        est_duration_s=arrays["est_duration_s"],
    )


def test_fedzero_fits_the_window_then_the_cleanest_then_the_most_useful() -> None:
    n = 8
    energy = np.full(n, J_PER_KWH)  # 1 kWh each, so carbon_g is the intensity
    intensity = np.array([50, 60, 70, 80, 500, 600, 10, 20], dtype=float)
    duration = np.array([1, 1, 1, 1, 1, 1, 30, 30], dtype=float)
    loss = np.array([1, 2, 3, 4, 9, 9, 9, 9], dtype=np.float32)
    part = np.array([0, 0, 3, 0, 0, 0, 0, 0], dtype=np.int32)
    ctx = _ctx(n, est_energy_j=energy, est_carbon_g=intensity, est_duration_s=duration,
               last_loss=loss, participation=part)  # fmt: skip
    sel = FedZeroSelector(
        FedZeroParams(window_s=10.0, local_epochs=2, min_epochs=1, clean_share=0.5)
    )
    # 6 and 7 need 15 s for their min epoch: out. Of 0-5, the cleanest half is 0, 1, 2.
    # Utility (10 samples x loss) / sqrt(1 + participation): 10, 20, 15.
    assert sel.select(np.arange(n), 2, ctx, np.random.default_rng(0)).tolist() == [1, 2]
    assert sel.select(np.arange(n), 1, ctx, np.random.default_rng(0)).tolist() == [1]
    # Asked for more than the clean pool: the pool grows to k, still cleanest first.
    assert sel.select(np.arange(n), 4, ctx, np.random.default_rng(0)).tolist() == [0, 1, 2, 3]
    # A longer min epoch fraction shuts clients out of the window.
    strict = FedZeroSelector(FedZeroParams(window_s=10.0, local_epochs=2, min_epochs=2))
    assert strict.eligible(ctx).tolist() == [True] * 6 + [False] * 2
    with pytest.raises(ValueError, match="min_epochs"):
        FedZeroSelector(FedZeroParams(window_s=1.0, local_epochs=2, min_epochs=3))


def _grids(tmp_path: Path) -> Path:
    return write_fleet(
        tmp_path / "grids.toml",
        devices=[{"name": "fast", "flops_per_s": 1e9}, {"name": "slow", "flops_per_s": 1e6}],
        regions=[{"name": "LOW", "ci": 10.0}, {"name": "HIGH", "ci": 800.0}],
        entries=[
            {"device": "fast", "region": "LOW", "share": 0.25},
            {"device": "slow", "region": "LOW", "share": 0.25},
            {"device": "fast", "region": "HIGH", "share": 0.25},
            {"device": "slow", "region": "HIGH", "share": 0.25},
        ],
        server_region="LOW",
        server_mode="shared",
    )


def test_fedzero_runs_in_the_clean_grid_with_adaptive_work(
    tiny_config: RunConfig, tmp_path: Path
) -> None:
    cfg = tiny_config.replace(
        **{"fleet.catalog": str(_grids(tmp_path)), "selection.name": "fedzero",
           "fleet.deadline_s": 0.5, "fleet.partial_work": "aggregate", "train.local_epochs": 2,
           "train.batch_size": 8, "report.html": False}
    )  # fmt: skip
    greenfl.run(cfg, tmp_path / "fz")
    rows = read_ledger(tmp_path / "fz").client_rounds
    assert {r["region"] for r in rows} == {"LOW"}
    # slow clients fit their min epoch (the window holds ~half of 2 epochs of theirs)... or
    # are left out; those picked that the window cuts short send partial work
    assert {r["status"] for r in rows} <= {"completed", "partial"}
    assert all(r["compute_s"] + r["comm_s"] <= 0.5 for r in rows)
    with pytest.raises(ConfigError, match="fleet.deadline_s"):
        tiny_config.replace(**{"selection.name": "fedzero"})
    # min_epochs above train.local_epochs is refused where the selector is built
    with pytest.raises(ConfigError, match=r"min_epochs \(3\) .*train\.local_epochs \(2\)"):
        selector_for(cfg.replace(**{"selection.params.min_epochs": 3}))


def test_autofl_contexts_are_device_network_and_intensity_terciles() -> None:
    n = 6
    ctx = _ctx(n, est_energy_j=np.ones(n), est_carbon_g=np.array([1.0, 2, 3, 4, 5, 6]),
               est_duration_s=np.ones(n))  # fmt: skip
    sel = AutoFLSelector()
    got = sel.contexts(np.arange(n), ctx)
    pop, nets = ctx.population, len(ctx.population.fleet.networks)
    levels = np.array([0, 0, 1, 1, 2, 2])  # terciles of 1..6
    want = (pop.device[:n].astype(int) * nets + pop.network[:n]) * 3 + levels
    assert got.tolist() == want.tolist()


def test_autofl_learns_the_context_with_most_gain_per_gram() -> None:
    n = 20
    carbon = np.where(np.arange(n) < 10, 1.0, 100.0)  # 0-9 are 100x cleaner per round
    ctx = _ctx(n, est_energy_j=np.ones(n), est_carbon_g=carbon, est_duration_s=np.ones(n))
    sel = AutoFLSelector(AutoFLParams(exploration=0.0, min_exploration=0.0))
    rng = np.random.default_rng(0)
    acc = 0.1
    for rnd in range(1, 8):
        ctx.round_idx = rnd
        sel.select(np.arange(n), 4, ctx, rng)
        sel.observe(acc, acc + 0.01)  # the same gain whoever trained
        acc += 0.01
    # every context was tried (optimistic), then exploitation keeps to the clean ones
    assert len(sel.tries) == len(set(sel.contexts(np.arange(n), ctx).tolist()))
    picked = sel.select(np.arange(n), 4, ctx, rng)
    assert (picked < 10).all()
    # state round trip: a restored selector picks the same with the same random stream
    other = AutoFLSelector(AutoFLParams(exploration=0.0, min_exploration=0.0))
    other.load_state_dict(sel.state_dict())
    a = sel.select(np.arange(n), 4, ctx, np.random.default_rng(5))
    b = other.select(np.arange(n), 4, ctx, np.random.default_rng(5))
    assert a.tolist() == b.tolist()


def test_autofl_runs_and_resumes_identically(tiny_config: RunConfig, tmp_path: Path) -> None:
    cfg = tiny_config.replace(
        **{"fleet.catalog": str(_grids(tmp_path)), "selection.name": "autofl",
           "train.rounds": 6, "report.html": False}
    )  # fmt: skip
    greenfl.run(cfg, tmp_path / "full")
    greenfl.run(cfg.replace(**{"train.rounds": 3}), tmp_path / "half")
    greenfl.run(cfg, tmp_path / "half", resume=True)
    full = read_ledger(tmp_path / "full").client_rounds
    half = read_ledger(tmp_path / "half").client_rounds
    assert [(r["round"], r["client_id"]) for r in full] == [
        (r["round"], r["client_id"]) for r in half
    ]
