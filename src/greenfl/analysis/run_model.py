"""A finished run's final model, rebuilt from its folder without training: the dataset and
architecture from ``config.json`` (through the factories the engine uses), the weights from
the ledger's last snapshot, and who trained it from the ledger's ``client_rounds``."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from greenfl.config import RunConfig, build_config
from greenfl.core.errors import ConfigError, GreenflError, LedgerError
from greenfl.core.params import get_flat, set_flat
from greenfl.data.base import FederatedDataset
from greenfl.engine.resume import STATE_KEY
from greenfl.engine.snapshot import read_snapshot
from greenfl.factories import build_model_for, dataset_for
from greenfl.ledger.schema import AGGREGATED_SQL


@dataclass(frozen=True)
class RunModel:
    """The final global model of a run, with what it was trained on."""

    run_dir: Path
    cfg: RunConfig
    raw_config: dict[str, Any]
    dataset: FederatedDataset
    model: nn.Module  # holds the final global parameters
    round: int
    member_clients: np.ndarray  # clients with an aggregated update, ascending
    participations: np.ndarray  # aggregated rounds of each of member_clients


def load_run_model(run_dir: str | Path) -> RunModel:
    """The run in ``run_dir``; a GreenflError naming the file for a missing folder, a
    ledger of a run that did not complete, a missing config.json or snapshot."""
    run = Path(run_dir)
    if not run.is_dir():
        raise GreenflError(f"no run folder at {run}")
    ledger = run / "ledger.sqlite"
    if not ledger.is_file():
        raise GreenflError(f"no ledger at {ledger}")
    snap_round, blob, last_round, clients = _read_ledger(ledger)
    raw, cfg = _read_config(run / "config.json")
    dataset = dataset_for(cfg.data, cfg.seed)
    model = build_model_for(cfg, dataset)
    snap = read_snapshot(blob, dataset.num_clients)
    params = snap["global_params"]
    expected = get_flat(model)
    if params.shape != expected.shape or params.dtype != expected.dtype:
        raise LedgerError(
            f"{ledger}: the snapshot holds {tuple(params.shape)} {params.dtype} parameters, "
            f"the model config.json describes {tuple(expected.shape)} {expected.dtype}"
        )
    if last_round is not None and snap_round != last_round:
        raise LedgerError(
            f"{ledger}: the snapshot is of round {snap_round}, the last round is {last_round}"
        )
    set_flat(model, params)
    ids = np.array([c for c, _ in clients], dtype=np.int64)
    counts = np.array([n for _, n in clients], dtype=np.int64)
    if len(ids) and (ids.min() < 0 or ids.max() >= dataset.num_clients):
        raise LedgerError(
            f"{ledger}: client ids up to {ids.max()}, the dataset config.json describes has "
            f"{dataset.num_clients} clients"
        )
    return RunModel(run, cfg, raw, dataset, model, snap_round, ids, counts)


def _read_ledger(ledger: Path) -> tuple[int, bytes, int | None, list[tuple[int, int]]]:
    """(snapshot round, snapshot bytes, last round, [(client, aggregated rounds)])."""
    conn = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        run = conn.execute("SELECT status FROM runs WHERE run_id = 1").fetchone()
        if run is None:
            raise LedgerError(f"{ledger}: the ledger holds no run")
        if run[0] != "completed":
            raise LedgerError(
                f"{ledger}: the run is {run[0]}, not completed; audit a finished run "
                "(greenfl run --resume finishes an interrupted one)"
            )
        state = conn.execute(
            "SELECT round, value FROM server_state WHERE key = ?", (STATE_KEY,)
        ).fetchone()
        if state is None:
            raise LedgerError(
                f"{ledger}: no snapshot of the final model (a run with engine.checkpoint "
                "= false or engine.accounting = false keeps none)"
            )
        last = conn.execute("SELECT MAX(round) FROM rounds").fetchone()[0]
        clients = conn.execute(
            "SELECT client_id, COUNT(*) FROM client_rounds WHERE "
            + AGGREGATED_SQL
            + " GROUP BY client_id ORDER BY client_id"
        ).fetchall()
    except sqlite3.DatabaseError as exc:
        raise LedgerError(f"{ledger}: not a greenfl ledger ({exc})") from None
    finally:
        conn.close()
    return int(state[0]), bytes(state[1]), last, [(int(c), int(n)) for c, n in clients]


def _read_config(path: Path) -> tuple[dict[str, Any], RunConfig]:
    if not path.is_file():
        raise GreenflError(f"no {path}: the run never finished writing its outputs")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: not a config (a JSON object is expected)")
    try:
        return raw, build_config(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def privacy_setting(raw: dict[str, Any]) -> dict[str, Any] | None:
    """The run's ``privacy`` section as config.json holds it, or None where it has none
    (runs from before differential privacy was wired)."""
    if "privacy" not in raw:
        return None
    section = raw["privacy"]
    return dict(section) if isinstance(section, dict) else None
