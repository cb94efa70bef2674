"""Resuming a run from its ledger: the rounds written stay, none is repeated or lost, and the
continued run computes exactly what the uninterrupted one did."""

import sqlite3
from pathlib import Path

import pytest

import greenfl
from greenfl.config import RunConfig
from greenfl.engine.build import build_loop
from greenfl.errors import ConfigError


def test_resume_after_a_crash_equals_the_uninterrupted_run(
    tiny_config: RunConfig, tmp_path: Path
) -> None:
    cfg = tiny_config.replace(**{"train.rounds": 5, "strategy.name": "fedadam"})
    straight = greenfl.run(cfg, tmp_path / "a")

    crashed = build_loop(cfg, tmp_path / "b")
    crashed.run_round()
    crashed.run_round()
    crashed.ledger.close()  # as if killed after round 2: no finish(), no summary

    loop = build_loop(cfg, tmp_path / "b", resume=True)
    assert loop.state.round == 2
    assert loop.state.now_s == crashed.state.now_s  # the simulated clock goes on from there
    loop.run()
    loop.ledger.finish("completed", "done")
    conn = sqlite3.connect(tmp_path / "b" / "ledger.sqlite")
    got = [r for (r,) in conn.execute("SELECT round FROM rounds ORDER BY round")]
    assert got == [1, 2, 3, 4, 5]
    accs = [a for (a,) in conn.execute("SELECT accuracy FROM rounds ORDER BY round")]
    assert accs == [r.accuracy for r in straight.history]  # FedAdam's moments restored too
    (start_3,) = conn.execute("SELECT start_s FROM rounds WHERE round = 3").fetchone()
    assert start_3 == crashed.state.now_s


def test_resume_without_a_ledger_is_a_config_error(tiny_config: RunConfig, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no ledger to resume"):
        build_loop(tiny_config, tmp_path / "none", resume=True)
