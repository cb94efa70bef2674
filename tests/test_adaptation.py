from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import greenfl
from greenfl.adapt import Arm, ThompsonBandit, UCBBandit, round_reward
from greenfl.config import RunConfig
from greenfl.factories import adapter_for
from greenfl.ledger import read_ledger
from tests.fleets import write_fleet


@pytest.mark.parametrize("cls", [UCBBandit, ThompsonBandit])
def test_bandit_learns_to_prefer_the_cheaper_arm(cls: type) -> None:
    # Both arms gain the same accuracy (with noise); arm 1 costs a quarter of the carbon.
    arms = [Arm(10, 1, 16), Arm(10, 5, 16)]
    carbon_g = [1.0, 0.25]
    bandit = cls(arms)
    rng = np.random.default_rng(0)
    picks = []
    acc = 0.5
    for _ in range(200):
        a = bandit.choose(rng)
        gain = 0.01 * (1 + 0.3 * rng.standard_normal())
        bandit.update(a, round_reward(acc, acc + gain, carbon_g[a]))
        picks.append(a)
    assert np.mean(np.array(picks[-100:]) == 1) > 0.8


def test_reward_is_gain_over_remaining_error_per_gram() -> None:
    assert round_reward(0.8, 0.9, 0.5) == pytest.approx(0.1 / 0.2 / 0.5)


def test_adapter_arms_default_to_the_train_section(tiny_config: RunConfig) -> None:
    cfg = tiny_config.replace(**{"adapt.name": "ucb", "adapt.local_epochs": [1, 3]})
    bandit = adapter_for(cfg.adapt, cfg.train)
    assert bandit is not None
    assert bandit.arms == [Arm(5, 1, 16), Arm(5, 3, 16)]
    assert adapter_for(tiny_config.adapt, tiny_config.train) is None


def test_adaptive_loop_uses_the_chosen_arm(tiny_config: RunConfig, tmp_path: Path) -> None:
    cfg = tiny_config.replace(
        **{"adapt.name": "ucb", "adapt.clients_per_round": [2, 4], "train.rounds": 3}
    )
    greenfl.run(cfg, tmp_path)
    led = read_ledger(tmp_path)
    # Untried arms go first, in order: 2 clients, then 4.
    assert [r["selected"] for r in led.rounds[:2]] == [2, 4]


def _target_fleet(tmp_path: Path) -> Path:
    # The default target is slow and hungry; "npu" does the same work for far less energy.
    return write_fleet(
        tmp_path / "targets.toml",
        devices=[
            {
                "name": "phone",
                "flops_per_s": 1e6,
                "power_w": 5.0,
                "targets": [
                    {"name": "cpu", "flops_per_s": 1e6, "power_w": 5.0},
                    {"name": "npu", "flops_per_s": 1e8, "power_w": 2.0},
                ],
            }
        ],
        regions=[{"name": "R", "ci": 300.0}],
        entries=[{"device": "phone", "region": "R", "share": 1.0}],
        server_region="R",
    )


@pytest.mark.parametrize("policy", ["entry", "energy", "carbon", "fastest"])
def test_target_choice_shows_in_the_ledger_and_drives_the_footprint(
    policy: str, tiny_config: RunConfig, tmp_path: Path
) -> None:
    cfg = tiny_config.replace(
        **{"fleet.catalog": str(_target_fleet(tmp_path)), "adapt.target": policy}
    )
    cfg = cfg.replace(**{"train.rounds": 1})
    greenfl.run(cfg, tmp_path / policy)
    rows = read_ledger(tmp_path / policy).client_rounds
    want = ("cpu", 1e6, 5.0) if policy == "entry" else ("npu", 1e8, 2.0)
    for r in rows:
        assert r["target"] == want[0]
        assert r["compute_s"] == pytest.approx(r["flops"] / want[1])
        assert r["energy_compute_j"] == pytest.approx(want[2] * r["compute_s"])
