from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import greenfl
from greenfl.adapt.bandit import (
    Arm,
    PooledParams,
    PooledThompsonBandit,
    ThompsonBandit,
    UCBBandit,
    round_gain,
    round_reward,
)
from greenfl.config import RunConfig
from greenfl.factories import adapter_for
from greenfl.ledger import read_ledger
from tests.fleets import write_fleet


@pytest.mark.parametrize("cls", [UCBBandit, ThompsonBandit, PooledThompsonBandit])
def test_bandit_learns_to_prefer_the_cheaper_arm(cls: type) -> None:
    # Both arms gain the same accuracy (with noise); arm 1 costs a quarter of the carbon.
    arms = [Arm(10, 1, 16), Arm(10, 5, 16)]
    carbon_g = [1.0, 0.25]
    # pooled is told the gains' true spread (its default, 0.25, is a digits run's)
    bandit = (
        cls(arms, PooledParams(gain_sd=0.3 * 0.02)) if cls is PooledThompsonBandit else cls(arms)
    )
    rng = np.random.default_rng(0)
    picks = []
    acc = 0.5
    for _ in range(200):
        a = bandit.choose(rng)
        gain = 0.01 * (1 + 0.3 * rng.standard_normal())
        bandit.update(a, round_gain(acc, acc + gain), carbon_g[a])
        picks.append(a)
    assert np.mean(np.array(picks[-100:]) == 1) > 0.8


def test_reward_is_gain_over_remaining_error_per_gram() -> None:
    assert round_gain(0.8, 0.9) == pytest.approx(0.1 / 0.2)
    assert round_reward(0.8, 0.9, 0.5) == pytest.approx(0.1 / 0.2 / 0.5)


def test_pooled_bandit_guesses_an_untried_arms_carbon_from_its_clients_alone() -> None:
    bandit = PooledThompsonBandit([Arm(2, 1, 16), Arm(4, 1, 16), Arm(2, 5, 16)])
    # Before any round: clients per round stands in for carbon.
    assert bandit.carbon_per_round_g().tolist() == [2.0, 4.0, 2.0]
    bandit.update(0, 0.2, 1.0)
    # 1 g for 2 clients: 4 clients 2 g; 5 epochs of 2 clients optimistically 1 g.
    assert bandit.carbon_per_round_g().tolist() == pytest.approx([1.0, 2.0, 1.0])
    bandit.update(2, 0.1, 3.0)
    bandit.update(2, 0.1, 5.0)
    # Per client: mean(1/2, 4/2) = 1.25, so 4 clients 5 g; the tried arms as observed.
    assert bandit.carbon_per_round_g().tolist() == pytest.approx([1.0, 5.0, 4.0])


@pytest.mark.parametrize(("prior_rounds", "expected"), [(1.0, 1), (0.1, 0)])
def test_pooled_bandit_shrinks_gains_toward_the_mean_of_all_rounds(
    prior_rounds: float, expected: int
) -> None:
    # Arm 0 gained 0.9 for 1 g, arm 1 0.1 for 0.4 g; all rounds' mean gain is 0.5. By hand,
    # with a negligible spread:
    # - prior 1 round: arm 0 (0.5 + 0.9) / 2 / 1 = 0.70, arm 1 (0.5 + 0.1) / 2 / 0.4 = 0.75;
    # - prior 0.1 rounds: arm 0 (0.05 + 0.9) / 1.1 = 0.864, arm 1 (0.05 + 0.1) / 1.1 / 0.4
    #   = 0.341.
    bandit = PooledThompsonBandit(
        [Arm(2, 1, 16), Arm(2, 5, 16)], PooledParams(prior_rounds=prior_rounds, gain_sd=1e-9)
    )
    bandit.update(0, 0.9, 1.0)
    bandit.update(1, 0.1, 0.4)
    assert bandit.choose(np.random.default_rng(0)) == expected


def test_pooled_bandit_does_not_try_every_arm_first() -> None:
    # Twelve arms, every one gaining the same share per round, carbon proportional to clients
    # and epochs: the round-robin start of ucb and thompson would try all twelve in twelve
    # rounds; pooled stays on the cheapest cohorts.
    arms = [Arm(c, e, b) for c in (3, 5, 10) for e in (5, 20) for b in (2, 4)]
    bandit = PooledThompsonBandit(arms)
    rng = np.random.default_rng(0)
    for _ in range(12):
        a = bandit.choose(rng)
        bandit.update(a, 0.1 + 0.05 * rng.standard_normal(), 0.001 * arms[a].clients_per_round
                      * arms[a].local_epochs)  # fmt: skip
    assert all(bandit.pulls[i] == 0 for i, a in enumerate(arms) if a.clients_per_round == 10)
    assert bandit.pulls.sum() == 12


def test_bandit_state_replays_and_reads_older_snapshots() -> None:
    arms = [Arm(2, 1, 16), Arm(4, 1, 16)]
    bandit = ThompsonBandit(arms)
    bandit.update(0, 0.2, 0.5)
    bandit.update(1, 0.1, 0.25)
    again = ThompsonBandit(arms)
    again.load_state_dict(bandit.state_dict())
    assert again.means().tolist() == bandit.means().tolist()
    # An older snapshot held (arm, reward): the same reward, as gain over 1 g.
    old = ThompsonBandit(arms)
    old.load_state_dict({"raw": [(0, 0.4), (1, 0.4)]})
    assert old.means().tolist() == bandit.means().tolist()


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
