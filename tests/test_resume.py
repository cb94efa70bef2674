"""Resuming a run from its ledger: the rounds written stay, none is repeated or lost, and the
continued run computes exactly what the uninterrupted one did."""

import sqlite3
from pathlib import Path

import pytest

import greenfl
from greenfl.config import RunConfig
from greenfl.core.errors import ConfigError
from greenfl.factories import build_loop


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


class _Payload:
    """A pickle that, when loaded, writes a file: what a tampered ledger would carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (Path.write_text, (str(self.marker), "pwned"))  # type: ignore[return-value]


@pytest.mark.parametrize("form", ["pickle", "torch.save"])
def test_a_pickled_snapshot_is_refused_without_running_it(
    tiny_config: RunConfig, tmp_path: Path, form: str
) -> None:
    """Reading a hostile ledger never runs code: a snapshot that is a pickle (greenfl's
    earlier forms) is refused with a LedgerError, and its payload never runs."""
    import io
    import pickle

    import torch

    from greenfl.core.errors import LedgerError

    marker = tmp_path / "ran"
    if form == "pickle":
        blob = pickle.dumps({"format": 2, "x": _Payload(marker)})
    else:
        buf = io.BytesIO()
        torch.save({"x": _Payload(marker)}, buf)
        blob = buf.getvalue()
    fresh = build_loop(tiny_config)
    with pytest.raises(LedgerError, match="not read"):
        fresh.restore(blob)
    assert not marker.exists()


def test_a_snapshot_round_trips_nested_state_exactly(tiny_config: RunConfig) -> None:
    """The safe format keeps what states hold: tensors as tensors, arrays as arrays, tuples,
    int-keyed dicts, NaN and big ints (a PCG64 state)."""
    import numpy as np
    import torch

    from greenfl.engine.snapshot import dumps, read_snapshot

    state = {
        "t": torch.arange(3, dtype=torch.float32),
        "a": np.array([1, 2], dtype=np.int16),
        "pairs": [(1, 0.5), (2, float("nan"))],
        "by_id": {3: "x", (1, 2): [1.5]},
        "big": 2**100 + 7,
    }
    blob = dumps(
        {
            "global_params": np.zeros(4, dtype=np.float32),
            "participation": np.zeros(2, dtype=np.int32),
            "last_selected": {"index": np.array([1]), "value": np.array([5])},
            "last_loss": np.full(2, np.nan, dtype=np.float32),
            "strategy": {},
            "planner": state,
        }
    )
    snap = read_snapshot(blob, 2)
    got = snap["planner"]
    assert isinstance(got["t"], torch.Tensor) and torch.equal(got["t"], state["t"])
    assert isinstance(got["a"], np.ndarray) and got["a"].dtype == np.int16
    assert got["pairs"][0] == (1, 0.5) and np.isnan(got["pairs"][1][1])
    assert got["by_id"] == {3: "x", (1, 2): [1.5]}
    assert got["big"] == 2**100 + 7
    assert snap["last_selected"].tolist() == [-1, 5]
    with pytest.raises(TypeError, match="cannot hold"):
        dumps({"planner": {"f": object()}})
