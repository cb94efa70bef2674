"""Fair participation (issue 28): the carbon selector's reserved share of each cohort for the
least-participating clients, and summary.json's count of the distinct clients that took part."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import greenfl
from greenfl.analysis.seed_stats import run_metrics
from greenfl.config import RunConfig, build_config
from greenfl.core.errors import ConfigError
from greenfl.factories import selector_for
from greenfl.fleet import Population, load_fleet
from greenfl.report.run_data import open_run
from greenfl.report.run_sections import participation_section
from greenfl.selection.base import SelectionContext
from greenfl.selection.cost import CarbonParams, CarbonSelector, reserved_slots
from greenfl.selection.utility import lowest, statistical_utility

AGGREGATED_DISTINCT = (
    "SELECT COUNT(DISTINCT client_id) FROM client_rounds WHERE status IN ('completed', 'partial')"
)


def _ctx(
    round_idx: int,
    carbon_g: np.ndarray,
    participation: np.ndarray,
    last_selected: np.ndarray,
    last_loss: np.ndarray | None = None,
) -> SelectionContext:
    n = len(carbon_g)
    pop = Population.assign(load_fleet("builtin"), np.full(n, 10), 0)
    return SelectionContext(
        round_idx=round_idx,
        now_s=0.0,
        population=pop,
        participation=participation.astype(np.int32),
        last_selected=last_selected.astype(np.int32),
        last_loss=np.ones(n, np.float32) if last_loss is None else last_loss,
        est_energy_j=np.ones(n),
        est_carbon_g=carbon_g.astype(np.float64),
        est_duration_s=np.ones(n),
    )


def _pick(share: float, k: int, ctx: SelectionContext) -> list[int]:
    sel = CarbonSelector(CarbonParams(reserved_share=share))
    n = len(ctx.participation)
    return sel.select(np.arange(n), k, ctx, np.random.default_rng(0)).tolist()


def test_reserved_slots_go_to_the_least_participating_cheapest_first() -> None:
    # 8 clients of 10 samples, loss 1: utility 10 each, so the order is the carbon's.
    carbon = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.5, 8.0])
    part = np.array([3, 3, 3, 0, 0, 1, 0, 2])
    # 3 and 4 never picked; 6, the cheapest of all, picked in round 2 with its update not
    # aggregated; 7 took part twice, the last time in round 1, longer ago than any other.
    last = np.array([5, 5, 5, -1, -1, 4, 2, 1])
    ctx = _ctx(6, carbon, part, last)
    # No reservation: the three cheapest, whatever their participation.
    assert _pick(0.0, 3, ctx) == [0, 1, 6]
    # A third of 3 slots: one, to the least-participating (0: 3, 4, 6), never picked before
    # picked-but-not-aggregated (3, 4 before 6), cheapest first (3); the other two stay
    # carbon-greedy among the rest (6, 0).
    assert _pick(1 / 3, 3, ctx) == [0, 3, 6]
    # Two thirds: 3 and 4; then the cheapest of the rest, 6.
    assert _pick(2 / 3, 3, ctx) == [3, 4, 6]
    # Every slot: the whole participation-0 tier.
    assert _pick(1.0, 3, ctx) == [3, 4, 6]
    # A fourth slot takes the next tier (participation 1: client 5), not the cheap 0, nor
    # 7, picked longest ago: participation ranks before recency.
    assert _pick(1.0, 4, ctx) == [3, 4, 5, 6]
    # Inside the tier the cost order holds: make 4 cheaper than 3 and it goes first.
    cheaper_4 = carbon.copy()
    cheaper_4[4] = 0.25
    assert _pick(1 / 3, 3, _ctx(6, cheaper_4, part, last)) == [0, 4, 6]


def test_a_fractional_share_is_spread_over_rounds() -> None:
    # 0.2 of 3 slots: 0.6 a round, floor(0.6 r) in all after round r.
    assert [reserved_slots(0.2, 3, r) for r in range(1, 11)] == [0, 1, 0, 1, 1, 0, 1, 0, 1, 1]
    # (0.35 x 3) x 20 is 20.999999999999996 in binary: still 21 slots by round 20.
    assert sum(reserved_slots(0.35, 3, r) for r in range(1, 21)) == 21
    assert [reserved_slots(1.0, 3, r) for r in (1, 2, 50)] == [3, 3, 3]
    assert [reserved_slots(0.0, 3, r) for r in (1, 2, 50)] == [0, 0, 0]
    assert reserved_slots(0.5, 0, 7) == 0
    # Never above ceil(share x k): 1.02 slots a round is 1, and 2 once in 50 rounds.
    slots = [reserved_slots(0.34, 3, r) for r in range(1, 201)]
    assert set(slots) == {1, 2} and sum(slots) == 204


def test_default_zero_is_the_old_selection() -> None:
    """The old selector was lowest(carbon / utility); share 0 (the default) is exactly it,
    round after round of random contexts, participation and unseen clients included."""
    rng = np.random.default_rng(7)
    n = 40
    for round_idx in range(1, 30):
        carbon = rng.lognormal(0.0, 1.0, n)
        loss = np.where(rng.random(n) < 0.3, np.nan, rng.random(n)).astype(np.float32)
        part = rng.integers(0, 4, n)
        last = np.where(part > 0, rng.integers(0, round_idx, n), -1)
        ctx = _ctx(round_idx, carbon, part, last, loss)
        candidates = np.sort(rng.choice(n, size=25, replace=False))
        cut = replace(
            ctx, est_carbon_g=carbon[candidates], est_energy_j=np.ones(25),
            est_duration_s=np.ones(25),
        )  # fmt: skip
        old = lowest(carbon[candidates] / statistical_utility(candidates, cut), candidates, 5)
        for selector in (CarbonSelector(), CarbonSelector(CarbonParams(reserved_share=0.0))):
            got = selector.select(candidates, 5, cut, np.random.default_rng(round_idx))
            assert got.tolist() == old.tolist()


def test_the_share_is_a_validated_parameter_of_the_carbon_selector() -> None:
    base = build_config({"selection": {"name": "carbon", "params": {"reserved_share": 0.5}}})
    sel = selector_for(base)
    assert isinstance(sel, CarbonSelector) and sel.reserved_share == 0.5
    with pytest.raises(ConfigError, match="reserved_share"):
        build_config({"selection": {"name": "carbon", "params": {"reserved_share": 1.5}}})
    with pytest.raises(ConfigError, match="reserved_share"):
        build_config({"selection": {"name": "energy", "params": {"reserved_share": 0.5}}})


def _run(tmp_path: Path, name: str, **sets: Any) -> tuple[dict[str, Any], Path]:
    cfg = build_config(
        {
            "data": {"num_clients": 60},
            "train": {"rounds": 6, "clients_per_round": 3, "local_epochs": 1, "batch_size": 16},
            "selection": {"name": "carbon"},
            "report": {"html": False},
        }
    ).replace(**sets)
    out = tmp_path / name
    res = greenfl.run(cfg, out)
    return res.summary, out


def _ledger_count(out: Path, sql: str) -> int:
    conn = sqlite3.connect(out / "ledger.sqlite")
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


def test_the_reserve_raises_the_distinct_clients_of_a_real_run(tmp_path: Path) -> None:
    free, free_dir = _run(tmp_path, "free")
    fair, fair_dir = _run(tmp_path, "fair", **{"selection.params.reserved_share": 1.0})
    # Every slot to a client not yet aggregated: 6 rounds x 3 new clients, where carbon
    # per utility alone returns to the same cheap clients.
    assert fair["clients_distinct"] == 18
    assert free["clients_distinct"] < 12
    half, _ = _run(tmp_path, "half", **{"selection.params.reserved_share": 0.5})
    assert free["clients_distinct"] < half["clients_distinct"] < fair["clients_distinct"]
    for s, out in ((free, free_dir), (fair, fair_dir)):
        assert s["clients_distinct"] == _ledger_count(out, AGGREGATED_DISTINCT)
    # The policy the ledger records carries the share.
    conn = sqlite3.connect(fair_dir / "ledger.sqlite")
    config = json.loads(conn.execute("SELECT config_json FROM runs").fetchone()[0])
    conn.close()
    assert config["selection"]["params"] == {"reserved_share": 1.0}


def test_clients_distinct_counts_aggregated_updates_only(
    tiny_config: RunConfig, tmp_path: Path
) -> None:
    # Drop-outs: some clients are selected and never aggregated.
    cfg = tiny_config.replace(
        **{"fleet.dropout_prob": 0.5, "train.rounds": 4, "report.html": False}
    )
    res = greenfl.run(cfg, tmp_path / "on")
    out = tmp_path / "on"
    assert res.summary["clients_distinct"] == _ledger_count(out, AGGREGATED_DISTINCT)
    seen = _ledger_count(out, "SELECT COUNT(DISTINCT client_id) FROM client_rounds")
    assert res.summary["clients_distinct"] < seen  # the dropped ones are not counted
    # Without accounting (no ledger rows, no drop-outs) the loop's participation counts it.
    on = greenfl.run(tiny_config.replace(**{"report.html": False}), tmp_path / "a")
    off = greenfl.run(
        tiny_config.replace(**{"engine.accounting": False, "report.html": False}), tmp_path / "b"
    )
    assert off.summary["clients_distinct"] == on.summary["clients_distinct"] > 0
    # The report's participation section and the seed comparison read the same figure.
    with open_run(out) as run:
        _, _, body = participation_section(run)
    took = int(body.split("data-metric='clients_distinct' data-value='")[1].split("'")[0])
    assert took == res.summary["clients_distinct"]
    metrics = run_metrics(res.summary, out / "ledger.sqlite")
    assert metrics["clients_distinct"] == res.summary["clients_distinct"]
    worst = res.summary["client_accuracy"]["worst_decile"]
    assert metrics["client_acc_worst_decile"] == worst
