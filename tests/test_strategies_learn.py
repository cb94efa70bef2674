"""Every registered strategy, run on the quickstart with its own defaults, learns (issue 13:
with one shared server_lr = 1.0, FedAdam and FedYogi stayed at chance)."""

from __future__ import annotations

from pathlib import Path

import pytest

import greenfl
from greenfl.strategy import STRATEGIES


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_each_strategy_learns_the_quickstart_with_its_defaults(tmp_path: Path, name: str) -> None:
    # The async strategies run in async mode: FedBuff's 10 steps of 10 updates are the
    # sync runs' 10 rounds of 10 clients; FedAsync's step is one update, so 100 of them.
    mode = {
        "fedbuff": ["engine.mode='async'", "async.concurrency=10"],
        "fedasync": ["engine.mode='async'", "async.concurrency=10", "train.rounds=100"],
    }.get(name, [])
    res = greenfl.run(
        None,
        tmp_path / name,
        overrides=[f"strategy.name='{name}'", "train.rounds=10", "report.html=false", *mode],
    )
    initial = float(greenfl.read_ledger(tmp_path / name).meta["initial_accuracy"])
    # digits has 10 classes: chance is ~0.1, and the untrained MLP sits near it
    assert initial < 0.3
    assert res.summary["final_accuracy"] > 0.6, (name, res.summary["final_accuracy"])
