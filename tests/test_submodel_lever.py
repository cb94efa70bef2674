"""The sub-model width as one more lever of the policies (issue 31 item 4): a selector's
estimates price each candidate at the width it would train, and the adapt bandit's arms
can cap a round's widest width (docs/submodels.md, "The width as a lever")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import greenfl
from greenfl.config import RunConfig
from greenfl.core.errors import ConfigError
from greenfl.factories import build_loop
from greenfl.submodel.policy import WidthCost, WidthPlan, cap_index
from tests.ledger_sql import rows
from tests.test_submodel_run import WIDTHS, sub_config


def _plan(choice: str = "fixed") -> WidthPlan:
    # the digits MLP's hand counts (tests/test_submodel_run.py): 316 h FLOPs a sample
    costs = tuple(
        WidthCost(w, 0, 316.0 * h, 4 * h, 4 * h) for w, h in zip(WIDTHS, (64, 32, 16), strict=True)
    )
    return WidthPlan("heterofl", choice, costs, None, 0.5, seed=0)


def _never(width: WidthCost) -> np.ndarray:
    raise AssertionError("the fixed choice prices nothing")


def test_a_width_cap_narrows_only_the_clients_above_it() -> None:
    plan, clients = _plan(), np.arange(6)
    # the fixed split gives 1, 0.5, 0.25, 1, 0.5, 0.25
    assert plan.choose(clients, 1, _never, _never).tolist() == [1.0, 0.5, 0.25] * 2
    assert plan.choose(clients, 1, _never, _never, 0.5).tolist() == [0.5, 0.5, 0.25] * 2
    # a cap between widths keeps the widest width within it
    assert plan.choose(clients, 1, _never, _never, 0.3).tolist() == [0.25] * 6
    assert cap_index(np.array(WIDTHS), 1.0) == 0 and cap_index(np.array(WIDTHS), 0.5) == 1
    with pytest.raises(ConfigError, match="narrower than every width"):
        plan.choose(clients, 1, _never, _never, 0.1)


def test_a_selectors_estimates_price_each_candidate_at_its_width(
    tiny_config: RunConfig, tmp_path: Path
) -> None:
    loop = build_loop(sub_config(tiny_config), tmp_path / "run")
    costs = loop.parts.costs
    clients = np.arange(6)
    full, rows_ = costs.estimate(clients, 0.0, 1)
    at_width, _ = costs.estimate(clients, 0.0, 1, round_idx=1)
    assert costs.submodel is not None
    for i, width in enumerate([1.0, 0.5, 0.25] * 2):
        one = np.array([i])
        priced = costs._estimate(one, rows_[i : i + 1], 0.0, 1, costs.submodel.cost_of(width))
        assert at_width.energy_j[i] == pytest.approx(float(priced.energy_j[0]), rel=1e-9)
        assert at_width.carbon_g[i] == pytest.approx(float(priced.carbon_g[0]), rel=1e-9)
    # full width is priced as before; narrower widths cost less, in time and energy
    assert at_width.energy_j[[0, 3]] == pytest.approx(full.energy_j[[0, 3]], rel=1e-12)
    narrow = [1, 2, 4, 5]
    assert (at_width.energy_j[narrow] < full.energy_j[narrow]).all()
    assert (at_width.duration_s[narrow] < full.duration_s[narrow]).all()
    # a width cap prices every candidate at or below it
    capped, _ = costs.estimate(clients, 0.0, 1, round_idx=1, width_cap=0.25)
    assert (capped.energy_j <= at_width.energy_j + 1e-12).all()
    quarter = costs._estimate(clients[:1], rows_[:1], 0.0, 1, costs.submodel.cost_of(0.25))
    assert capped.energy_j[0] == pytest.approx(float(quarter.energy_j[0]), rel=1e-9)


def test_the_adapt_bandit_caps_a_rounds_widths_by_its_arm(
    tiny_config: RunConfig, tmp_path: Path
) -> None:
    # UCB tries its arms once each, in order, before it weighs them: round 1 has no cap,
    # round 2 caps every client at 0.25, round 3 is the bandit's pick
    cfg = sub_config(tiny_config, **{"adapt.name": "ucb", "adapt.widths": [1.0, 0.25]})
    greenfl.run(cfg, tmp_path / "run")
    got = rows(tmp_path / "run", "SELECT round, client_id, width FROM client_rounds")
    for r, cid, w in got:
        fixed = WIDTHS[cid % 3]  # the fixed split, widest first
        if r == 1:
            assert w == fixed
        elif r == 2:
            assert w == 0.25
        else:
            assert w in (fixed, 0.25)
    # round 2 narrowed the clients the fixed split gives a wider width
    assert any(WIDTHS[cid % 3] > 0.25 for r, cid, _ in got if r == 2)


@pytest.mark.parametrize(
    "sets",
    [
        {"adapt.name": "ucb", "adapt.widths": [1.0, 0.5]},  # no sub-models
        {
            "adapt.name": "ucb",
            "adapt.widths": [0.3],
            "submodel.name": "heterofl",
            "submodel.widths": WIDTHS,
        },  # fmt: skip
    ],
)
def test_width_arms_outside_the_runs_widths_are_refused(tiny_config: RunConfig, sets: dict) -> None:
    with pytest.raises(ConfigError, match="adapt.widths .* must be widths of the run"):
        tiny_config.replace(**sets)
