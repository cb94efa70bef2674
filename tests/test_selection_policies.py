from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import greenfl
from greenfl.config import RunConfig, build_config
from greenfl.factories import selector_for
from greenfl.fleet import Population, load_fleet
from greenfl.ledger import read_ledger
from greenfl.selection.base import SelectionContext
from greenfl.selection.fairness import FairnessGuard, jain_index
from greenfl.selection.oort import OortParams, OortSelector
from greenfl.selection.random import RandomSelector
from tests.fleets import write_fleet


def _two_grid_fleet(tmp_path: Path) -> Path:
    return write_fleet(
        tmp_path / "grids.toml",
        devices=[{"name": "dev"}],
        regions=[{"name": "LOW", "ci": 10.0}, {"name": "HIGH", "ci": 800.0}],
        entries=[
            {"device": "dev", "region": "LOW", "share": 0.5},
            {"device": "dev", "region": "HIGH", "share": 0.5},
        ],
        server_region="LOW",
    )


def _two_device_fleet(tmp_path: Path) -> Path:
    # Same grid and network; "hog" spends ~75 J computing a round, "frugal" ~0.003 J.
    return write_fleet(
        tmp_path / "devices.toml",
        devices=[
            {"name": "frugal", "flops_per_s": 1e9, "power_w": 2.0},
            {"name": "hog", "flops_per_s": 1e6, "power_w": 50.0},
        ],
        regions=[{"name": "R", "ci": 300.0}],
        entries=[
            {"device": "frugal", "region": "R", "share": 0.5},
            {"device": "hog", "region": "R", "share": 0.5},
        ],
        server_region="R",
    )


def test_carbon_selector_picks_the_low_carbon_grid(tiny_config: RunConfig, tmp_path: Path) -> None:
    fleet = _two_grid_fleet(tmp_path)
    cfg = tiny_config.replace(**{"fleet.catalog": str(fleet), "selection.name": "carbon"})
    greenfl.run(cfg, tmp_path / "carbon")
    regions = {r["region"] for r in read_ledger(tmp_path / "carbon").client_rounds}
    assert regions == {"LOW"}
    # The same fleet under random selection does use the dirty grid: the test can fail.
    greenfl.run(cfg.replace(**{"selection.name": "random"}), tmp_path / "random")
    assert "HIGH" in {r["region"] for r in read_ledger(tmp_path / "random").client_rounds}


def test_energy_selector_picks_the_efficient_device(tiny_config: RunConfig, tmp_path: Path) -> None:
    fleet = _two_device_fleet(tmp_path)
    cfg = tiny_config.replace(**{"fleet.catalog": str(fleet), "selection.name": "energy"})
    greenfl.run(cfg, tmp_path / "energy")
    led = read_ledger(tmp_path / "energy")
    assert {r["device"] for r in led.client_rounds} == {"frugal"}
    pop = Population.assign(load_fleet(fleet), np.full(20, 72), cfg.seed)
    assert (pop.device == 1).sum() >= 5  # hogs were available to pick


def _ctx(n: int, round_idx: int, **arrays: np.ndarray) -> SelectionContext:
    fleet = load_fleet("builtin")
    pop = Population.assign(fleet, np.full(n, 10), 0)
    return SelectionContext(
        round_idx=round_idx,
        now_s=0.0,
        population=pop,
        participation=arrays.get("participation", np.zeros(n, np.int32)),
        last_selected=arrays.get("last_selected", np.full(n, -1, np.int32)),
        last_loss=arrays.get("last_loss", np.full(n, np.nan, np.float32)),
        est_energy_j=arrays.get("est_energy_j"),
        est_carbon_g=arrays.get("est_carbon_g"),
        est_duration_s=arrays.get("est_duration_s"),
    )


class FirstK:
    """A selector that starves everyone but the lowest ids."""

    name = "first"
    needs_estimates = False

    def select(self, candidates, k, ctx, rng):  # noqa: ANN001, ANN201
        return np.sort(candidates)[:k]


def test_floor_guard_forces_overdue_clients_in() -> None:
    n, k, window = 30, 5, 4
    guard = FairnessGuard(FirstK(), "floor", window=window)
    last = np.full(n, -1, np.int32)
    rng = np.random.default_rng(0)
    seen_gap: dict[int, int] = {}
    for rnd in range(1, 41):
        ctx = _ctx(n, rnd, last_selected=last)
        picked = guard.select(np.arange(n), k, ctx, rng)
        assert len(picked) == k and len(set(picked.tolist())) == k
        for c in picked:
            if last[c] >= 0:
                seen_gap[int(c)] = max(seen_gap.get(int(c), 0), rnd - int(last[c]))
        if rnd == window + n // k:  # overdue from round `window` on, k of them per round
            assert (last >= 0).sum() + len(picked) >= n
        last[picked] = rnd
    # Without the guard only clients 0..4 would ever train.
    assert set(seen_gap) == set(range(n))
    # 30 clients, 5 slots: a window of 4 cannot hold everyone, but nobody waits forever and
    # the most overdue go first, so the longest gap between picks is n / k = 6 rounds.
    assert max(seen_gap.values()) <= n // k


def test_floor_guard_keeps_the_window_when_it_fits() -> None:
    n, k, window = 12, 4, 4  # 12 clients fit in 4 rounds x 4 slots minus the inner picks
    guard = FairnessGuard(FirstK(), "floor", window=window)
    last = np.full(n, -1, np.int32)
    for rnd in range(1, 30):
        picked = guard.select(np.arange(n), k, _ctx(n, rnd, last_selected=last), None)
        last[picked] = rnd
        # after the start-up (everyone is overdue at once), nobody goes W rounds unpicked
        if rnd >= 2 * window:
            assert (rnd - last < window).all(), (rnd, last)


def test_jain_guard_lifts_the_index_to_its_floor() -> None:
    n, k = 20, 4
    part = np.zeros(n, np.int32)
    part[:4] = 10  # four clients did all the work so far
    # FirstK alone gives them another round: 44^2 / (20 x 4 x 11^2) = 0.2
    alone = part.astype(float)
    alone[:4] += 1
    assert jain_index(alone) == pytest.approx(0.2)
    guard = FairnessGuard(FirstK(), "jain", jain_floor=0.22)
    picked = guard.select(np.arange(n), k, _ctx(n, 11, participation=part), None)
    after = part.astype(float)
    after[picked] += 1
    # Swaps needed: 1 -> 0.2086, 2 -> 0.2180, 3 -> 0.2283 (sum of squares 424): stop at 3.
    assert jain_index(after) == pytest.approx(44**2 / (20 * 424))
    assert len(picked) == k and len(set(picked.tolist()) & {0, 1, 2, 3}) == 1
    assert jain_index(np.array([1, 1, 1, 1.0])) == pytest.approx(1.0)
    assert jain_index(np.array([4, 0, 0, 0.0])) == pytest.approx(0.25)


def test_oort_explores_unseen_and_penalises_slow_clients() -> None:
    n = 40
    last = np.full(n, -1, np.int32)
    loss = np.full(n, np.nan, np.float32)
    last[:20], loss[:20] = 1, 1.0  # 0..19 explored, equal utility
    duration = np.ones(n)
    duration[:10] = 100.0  # 0..9 are slow
    ctx = _ctx(
        n,
        50,
        last_selected=last,
        last_loss=loss,
        est_duration_s=duration,
        est_energy_j=np.ones(n),
        est_carbon_g=np.ones(n),
    )
    sel = OortSelector(OortParams(preferred_duration_s=1.0, min_exploration=0.2))
    picks = np.concatenate(
        [sel.select(np.arange(n), 10, ctx, np.random.default_rng(s)) for s in range(50)]
    )
    explored = picks[picks < 20]
    assert (picks >= 20).any()  # unexplored clients get the exploration share
    assert (explored >= 10).mean() > 0.95  # fast explored clients win exploitation


def test_make_selector_wraps_with_the_guard() -> None:
    guarded = {"name": "carbon", "fairness": "jain", "jain_floor": 0.7}
    s = selector_for(build_config({"selection": guarded}))
    assert isinstance(s, FairnessGuard) and s.needs_estimates and s.name == "carbon+jain"
    assert not selector_for(build_config({})).needs_estimates
    assert isinstance(selector_for(build_config({})), RandomSelector)
