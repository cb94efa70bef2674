"""Exports read back equal to the ledger; optional trackers fail clearly when missing."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
from pathlib import Path

import pytest
from report_fixtures import write_hand_ledger

from greenfl.config import build_config
from greenfl.core.errors import ConfigError, MissingExtraError
from greenfl.report.export import TABLES, column_types, export_ledger, read_csv_export, read_table


@pytest.fixture
def hand_run(tmp_path: Path) -> Path:
    write_hand_ledger(tmp_path / "hand")
    return tmp_path / "hand"


def _ledger(run: Path) -> dict[str, tuple[list[str], list[tuple]]]:
    conn = sqlite3.connect(run / "ledger.sqlite")
    try:
        return {t: read_table(conn, t) for t in TABLES} | {
            f"{t}:types": column_types(conn, t) for t in TABLES
        }
    finally:
        conn.close()


def test_csv_round_trip(hand_run: Path) -> None:
    paths = export_ledger(hand_run, "csv")
    assert [p.name for p in paths] == [f"{t}.csv" for t in TABLES]
    led = _ledger(hand_run)
    for t in TABLES:
        cols, rows = led[t]
        back = read_csv_export(hand_run / "export" / f"{t}.csv", led[f"{t}:types"])
        assert back == rows, t
    assert len(led["client_rounds"][1]) == 4


def test_json_round_trip(hand_run: Path, tmp_path: Path) -> None:
    export_ledger(hand_run / "ledger.sqlite", "json", tmp_path / "out")
    led = _ledger(hand_run)
    for t in TABLES:
        cols, rows = led[t]
        back = json.loads((tmp_path / "out" / f"{t}.json").read_text())
        assert back == [dict(zip(cols, r, strict=True)) for r in rows], t


def test_parquet_round_trip_or_clear_error(hand_run: Path) -> None:
    if importlib.util.find_spec("pyarrow") is None:
        with pytest.raises(MissingExtraError, match="pip install pyarrow"):
            export_ledger(hand_run, "parquet")
        return
    import pyarrow.parquet as pq

    export_ledger(hand_run, "parquet")
    led = _ledger(hand_run)
    for t in TABLES:
        cols, rows = led[t]
        back = pq.read_table(hand_run / "export" / f"{t}.parquet").to_pylist()
        assert back == [dict(zip(cols, r, strict=True)) for r in rows], t


def test_bad_format(hand_run: Path) -> None:
    with pytest.raises(ConfigError, match="--format"):
        export_ledger(hand_run, "xlsx")


@pytest.mark.parametrize(
    ("key", "value", "module", "message"),
    [
        ("report.tensorboard_dir", '"tb"', "tensorboard", "pip install tensorboard"),
        ("report.mlflow", "true", "mlflow", "pip install mlflow"),
    ],
)
def test_trackers_need_their_library(
    key: str, value: str, module: str, message: str, tmp_path: Path
) -> None:
    import greenfl

    cfg = build_config({}, [f"{key}={value}"])
    if importlib.util.find_spec(module) is not None:
        pytest.skip(f"{module} is installed; the missing-library path cannot be tested")
    with pytest.raises(MissingExtraError, match=message):
        greenfl.run(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "ledger.sqlite").exists()  # it failed before any work


@pytest.mark.skipif(
    importlib.util.find_spec("tensorboard") is None, reason="tensorboard not installed"
)
def test_tensorboard_logs_each_round(tmp_path: Path) -> None:
    import greenfl

    cfg = build_config(
        {"data": {"num_clients": 10}, "train": {"rounds": 2, "clients_per_round": 3}},
        [f'report.tensorboard_dir="{tmp_path / "tb"}"'],
    )
    greenfl.run(cfg)
    assert any((tmp_path / "tb").iterdir())
