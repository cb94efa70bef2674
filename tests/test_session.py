"""The run session shared by greenfl.run and greenfl serve: how a run ends (completed,
failed, interrupted) is in the ledger, and an interrupted run resumes to exactly the run
that was never interrupted."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import greenfl
from greenfl.config import RunConfig
from greenfl.core.errors import ConfigError
from greenfl.engine.records import RoundRecord
from greenfl.engine.session import RunInterrupted, check_out_dir

# Host-measured time and what it moves (tests/golden/record.py HOST_COLUMNS), plus wall_*.
HOST = {"wall_s", "server_s", "server_energy_j", "server_carbon_g", "start_s", "end_s"}
HOST |= {"server_estimated"}


def _status(out: Path) -> tuple[str, str]:
    conn = sqlite3.connect(out / "ledger.sqlite")
    try:
        return conn.execute("SELECT status, stop_reason FROM runs").fetchone()
    finally:
        conn.close()


def _rows(out: Path, table: str) -> list[dict[str, object]]:
    conn = sqlite3.connect(out / "ledger.sqlite")
    try:
        cur = conn.execute(f"SELECT * FROM {table} ORDER BY round, rowid")
        cols = [c[0] for c in cur.description]
        return [
            {c: v for c, v in zip(cols, row, strict=True) if c not in HOST and "wall" not in c}
            for row in cur.fetchall()
        ]
    finally:
        conn.close()


def _stop_after(n: int):  # noqa: ANN202 - a test helper
    def on_round(rec: RoundRecord) -> None:
        if rec.round == n:
            raise KeyboardInterrupt  # what Ctrl-C raises in the main thread

    return on_round


def test_an_interrupted_run_is_marked_and_resumes_to_the_same_ledger(
    tiny_config: RunConfig, tmp_path: Path
) -> None:
    cfg = tiny_config.replace(**{"train.rounds": 5})
    greenfl.run(cfg, tmp_path / "straight")
    with pytest.raises(RunInterrupted) as info:
        greenfl.run(cfg, tmp_path / "cut", on_round=_stop_after(2))
    assert info.value.rounds_done == 2 and info.value.out_dir == tmp_path / "cut"
    assert isinstance(info.value, KeyboardInterrupt)  # callers catching that still do
    assert _status(tmp_path / "cut") == ("interrupted", "interrupted")
    assert not (tmp_path / "cut" / "summary.json").exists()

    resumed = greenfl.run(cfg, tmp_path / "cut", resume=True)
    assert [r.round for r in resumed.history] == [3, 4, 5]  # each round once
    assert _status(tmp_path / "cut")[0] == "completed"
    assert resumed.summary["rounds_completed"] == 5
    for table in ("rounds", "client_rounds"):
        assert _rows(tmp_path / "cut", table) == _rows(tmp_path / "straight", table), table


def test_a_failed_run_is_marked_failed_with_its_reason(
    tiny_config: RunConfig, tmp_path: Path
) -> None:
    def boom(rec: RoundRecord) -> None:
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        greenfl.run(tiny_config, tmp_path / "o", on_round=boom)
    assert _status(tmp_path / "o") == ("failed", "RuntimeError: disk on fire")


def test_out_that_is_a_file_is_a_config_error(tiny_config: RunConfig, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        check_out_dir(tmp_path / "f")
    with pytest.raises(ConfigError, match="lies under"):
        greenfl.run(tiny_config, tmp_path / "f" / "sub")
    check_out_dir(tmp_path / "new" / "deeper")  # not there yet: fine
