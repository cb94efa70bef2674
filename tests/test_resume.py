"""Resuming a run from its ledger: the rounds written stay, none is repeated or lost, and the
continued run computes exactly what the uninterrupted one did."""

import sqlite3
from pathlib import Path

import pytest

import greenfl
from greenfl.config import RunConfig
from greenfl.core.errors import ConfigError
from greenfl.engine.build import build_loop


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


def test_a_snapshot_of_the_earlier_form_still_restores(
    tiny_config: RunConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ledgers written before snapshot format 2 hold a pickle of boxed numpy arrays, the
    per-client arrays sparse as boxed tensors; a resumed run must still read them."""
    import pickle

    import numpy as np
    import torch

    import greenfl.engine.loop as loop_module

    loop = build_loop(tiny_config)
    loop.run_round()
    loop.run_round()
    st = loop.state
    box = loop_module._TensorBox

    def sparse(values: np.ndarray, default: float) -> dict[str, object]:
        idx = np.flatnonzero(~np.isnan(values) if np.isnan(default) else values != default)
        return {"index": box(idx), "value": box(values[idx])}

    old = {
        "round": st.round,
        "global_params": box(st.global_params.numpy()),
        "now_s": st.now_s,
        "population_size": len(st.participation),
        "participation": sparse(st.participation, 0),
        "last_selected": sparse(st.last_selected, -1),
        "last_loss": sparse(st.last_loss, np.nan),
        "rngs": {k: r.bit_generator.state for k, r in loop.rngs.items()},
        "strategy": {},
        "planner": loop.planner.state_dict(),
        "cum_energy_j": st.cum_energy_j,
        "cum_carbon_g": st.cum_carbon_g,
        "last_round_carbon_g": st.last_round_carbon_g,
        "best_accuracy": st.best_accuracy,
    }
    monkeypatch.setattr(box, "__module__", "greenfl.engine.loop")  # where it lived then
    blob = pickle.dumps(old)
    assert b"greenfl.engine.loop" in blob and b"_TensorBox" in blob
    fresh = build_loop(tiny_config)
    fresh.restore(blob)
    assert fresh.state.round == 2 and fresh.state.now_s == st.now_s
    assert torch.equal(fresh.state.global_params, st.global_params)
    assert np.array_equal(fresh.state.participation, st.participation)
    assert np.array_equal(fresh.state.last_loss, st.last_loss, equal_nan=True)
    assert fresh.rngs["selection"].random() == loop.rngs["selection"].random()
