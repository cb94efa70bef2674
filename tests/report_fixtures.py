"""A hand-written ledger whose every number is known, for the report's table tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from greenfl.config import build_config
from greenfl.fleet.catalog import load_fleet
from greenfl.ledger.summary import summarize
from greenfl.ledger.writer import LedgerWriter


def _client(rnd: int, cid: int, region: str, device: str, status: str, **kw: Any) -> dict:
    row = {
        "round": rnd,
        "client_id": cid,
        "device": device,
        "network": "wifi",
        "region": region,
        "target": "default",
        "status": status,
        "reason": None,
        "num_samples": 10,
        "flops": 1e6,
        "start_s": 0.0,
        "compute_s": 1.0,
        "bytes_up": 100,
        "bytes_down": 100,
        "comm_s": 1.0,
        "energy_compute_j": 3.0,
        "energy_comm_j": 1.0,
        "ci_g_per_kwh": 100.0,
        "carbon_operational_g": 4.0,
        "carbon_embodied_g": 0.5,
        "estimated": 1,
    }
    row.update(kw)
    return row


def _round(rnd: int, start: float, end: float, acc: float, srv_j: float, srv_g: float) -> dict:
    return {
        "round": rnd,
        "start_s": start,
        "end_s": end,
        "wait_s": 0.0,
        "accuracy": acc,
        "loss": 1.0,
        "selected": 2,
        "completed": 1,
        "server_s": 0.1,
        "server_energy_j": srv_j,
        "server_idle_energy_j": 0.0,
        "server_carbon_g": srv_g,
        "server_ci_g_per_kwh": 369.0,
        "server_estimated": 1,
        "wall_s": 0.1,
    }


# What the run records about its world (ledger meta, as greenfl.accounting.curves writes it):
# client 3 (NO, desktop) was never selected. IN and ZA end a few tenths of a g/kWh apart.
HAND_GROUPS = {
    "region": {"FR": 1, "IN": 2, "NO": 1},
    "device": {"laptop": 1, "phone-mid": 2, "desktop": 1},
}
HAND_CURVES = {
    "start_utc": "2026-01-15T00:00:00+00:00",
    "mode": "auto",
    "constant_g_per_kwh": None,
    "server_region": "ZA",
    "t_s": [0.0, 43200.0, 86400.0],
    "regions": {
        "FR": {"label": "France", "source": "annual mean", "ci_g_per_kwh": [56.0, 56.0, 56.0]},
        "IN": {"label": "India", "source": "annual mean", "ci_g_per_kwh": [709.0, 709.0, 709.0]},
        "NO": {"label": "Norway", "source": "annual mean", "ci_g_per_kwh": [30.0, 30.0, 30.0]},
        "ZA": {"label": "South Africa", "source": "hourly profile",
               "ci_g_per_kwh": [690.0, 720.0, 708.6]},
    },
}  # fmt: skip


def write_hand_ledger(
    out: Path, world: bool = True, config: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Two rounds, four client-rounds (clients 0, 1, 2 of a population of 4):

    round 1: client 0 (FR, laptop) completed: compute 3 J, comm 1 J, op 4 g, emb 0.5 g
             client 1 (IN, phone-mid) straggler "deadline": compute 1 J, comm 1 J, op 2 g, emb 1 g
             server 10 J, 2 g; accuracy 0.5
    round 2: client 0 (FR, laptop) completed: as above
             client 2 (IN, phone-mid) dropped "battery": compute 0 J, comm 2 J, op 1 g, emb 0 g
             server 20 J, 3 g; accuracy 0.75
    ``world``: with the meta keys intensity_curves and population_groups (HAND_CURVES,
    HAND_GROUPS), as every run writes them; without, as an older greenfl wrote the ledger.
    ``config``: more of the config, e.g. {"eval": {"every": 5}}. Returns the summary."""
    raw = {"data": {"num_clients": 4}, "train": {"rounds": 2, "clients_per_round": 2}}
    cfg = build_config({**raw, **(config or {})})
    out.mkdir(parents=True, exist_ok=True)
    w = LedgerWriter(out / "ledger.sqlite")
    w.begin_run(cfg.to_dict(), load_fleet().to_dict(), "test")
    w.set_meta("initial_accuracy", "0.25")
    if world:
        w.set_meta("intensity_curves", json.dumps(HAND_CURVES))
        w.set_meta("population_groups", json.dumps(HAND_GROUPS))
    w.write_round(
        _round(1, 0.0, 10.0, 0.5, 10.0, 2.0),
        [
            _client(1, 0, "FR", "laptop", "completed"),
            _client(
                1,
                1,
                "IN",
                "phone-mid",
                "straggler",
                reason="deadline",
                energy_compute_j=1.0,
                energy_comm_j=1.0,
                carbon_operational_g=2.0,
                carbon_embodied_g=1.0,
            ),
        ],
    )
    w.write_round(
        _round(2, 10.0, 30.0, 0.75, 20.0, 3.0),
        [
            _client(2, 0, "FR", "laptop", "completed"),
            _client(
                2,
                2,
                "IN",
                "phone-mid",
                "dropped",
                reason="battery",
                energy_compute_j=0.0,
                energy_comm_j=2.0,
                carbon_operational_g=1.0,
                carbon_embodied_g=0.0,
            ),
        ],
    )
    w.finish("completed", "completed 2 rounds")
    summary = summarize(w.conn, None, 1.5)
    w.close()
    (out / "summary.json").write_text(json.dumps(summary))
    return summary
