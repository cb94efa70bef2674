"""Asynchronous FL (issue 30): the staleness weights and the two async strategies against
hand-computed values, the [async] config's rules, and the async loop on the simulated clock
(per-update rows with their model version and staleness, each accounted over its own
interval, drop-outs, determinism, resume, the carbon-aware throttle)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import greenfl
from greenfl.config import RunConfig
from greenfl.config.run import build_config
from greenfl.core.errors import ConfigError
from greenfl.core.messages import ClientUpdate
from greenfl.engine.async_flow import AsyncFlow
from greenfl.engine.async_loop import AsyncLoop
from greenfl.factories import build_loop
from greenfl.strategy.asynchronous import (
    FedAsync,
    FedAsyncParams,
    FedBuff,
    FedBuffParams,
    staleness_weight,
)
from greenfl.strategy.fedavg import FedAvg
from tests.ledger_sql import rows


# ---- staleness and the strategies, by hand --------------------------------------------
def test_staleness_weights_by_hand() -> None:
    tau = np.array([0, 1, 3, 8])
    assert np.allclose(staleness_weight(tau, "constant"), [1, 1, 1, 1])
    # (1 + tau)^-0.5: 1, 1/sqrt(2), 1/2, 1/3
    assert np.allclose(staleness_weight(tau, "polynomial", a=0.5), [1, 2**-0.5, 0.5, 1 / 3])
    # hinge a = 1, b = 2: 1 up to tau = 2, then 1 / (tau - 2 + 1): tau 3 -> 1/2, 8 -> 1/7
    assert np.allclose(staleness_weight(tau, "hinge", a=1.0, b=2.0), [1, 1, 0.5, 1 / 7])
    with pytest.raises(ValueError, match="never negative"):
        staleness_weight(-1, "constant")


def test_fedbuff_step_by_hand() -> None:
    # weights 1 and 3 (samples), staleness weights 1 and 0.5, server_lr 2:
    # coefficients 2 x (1 x 1 / 4, 3 x 0.5 / 4) = (0.5, 0.75)
    ups = [
        ClientUpdate(0, torch.tensor([2.0, 0.0]), 1, staleness_weight=1.0),
        ClientUpdate(1, torch.tensor([0.0, 4.0]), 3, staleness_weight=0.5),
    ]
    got = FedBuff(FedBuffParams(server_lr=2.0)).aggregate(torch.tensor([1.0, 1.0]), ups)
    assert torch.allclose(got, torch.tensor([1.0 + 1.0, 1.0 + 3.0]))


def test_fedbuff_without_staleness_is_fedavg() -> None:
    gen = torch.Generator().manual_seed(0)
    ups = [ClientUpdate(i, torch.randn(50, generator=gen), 10 + i) for i in range(5)]
    x = torch.randn(50, generator=gen)
    assert torch.allclose(FedBuff().aggregate(x, ups), FedAvg().aggregate(x, ups), atol=1e-6)


def test_fedasync_mixes_the_client_model_into_the_current_one() -> None:
    # x = 0, the client trained from base 1 and moved by +1: its model is 2; alpha 0.5 and
    # staleness weight 1 -> 0.5 x 0 + 0.5 x 2 = 1; then a fresh update (base = x) of +2 at
    # weight 0.5 -> 1 + 0.25 x 2 = 1.5
    strat = FedAsync(FedAsyncParams(alpha=0.5))
    ups = [
        ClientUpdate(0, torch.tensor([1.0]), 5, base=torch.tensor([1.0])),
        ClientUpdate(1, torch.tensor([2.0]), 5, staleness_weight=0.5),
    ]
    assert torch.allclose(strat.aggregate(torch.tensor([0.0]), ups), torch.tensor([1.5]))


# ---- config ---------------------------------------------------------------------------
ASYNC = {"engine": {"mode": "async"}, "strategy": {"name": "fedbuff"}}


@pytest.mark.parametrize(
    ("raw", "msg"),
    [
        ({"strategy": {"name": "fedbuff"}}, "needs engine.mode = 'async'"),
        ({"engine": {"mode": "async"}}, "not 'fedavg'"),
        ({**ASYNC, "strategy": {"name": "fedasync"}, "async": {"buffer_size": 3}},
         "buffer_size must be 1"),
        ({**ASYNC, "fleet": {"deadline_s": 60}}, "does not support fleet.deadline_s"),
        ({**ASYNC, "fleet": {"over_selection": 0.3}}, "fleet.over_selection"),
        ({**ASYNC, "data": {"num_clients": 5}, "train": {"clients_per_round": 5},
          "async": {"concurrency": 6}}, "exceeds data.num_clients"),
        ({**ASYNC, "async": {"staleness": "linear"}}, "async.staleness"),
    ],
)  # fmt: skip
def test_async_config_rules(raw: dict, msg: str) -> None:
    with pytest.raises(ConfigError, match=msg):
        build_config(raw)


def test_the_async_section_is_the_key_async() -> None:
    cfg = build_config({**ASYNC, "async": {"concurrency": 7}})
    assert cfg.to_dict()["async"]["concurrency"] == 7
    assert cfg.replace(**{"async.buffer_size": 4}).async_.buffer_size == 4
    with pytest.raises(ConfigError, match="did you mean 'concurrency'"):
        build_config({**ASYNC, "async": {"concurency": 7}})


# ---- the loop -------------------------------------------------------------------------
def async_config(tiny_config: RunConfig, **sets: object) -> RunConfig:
    base = {
        "engine.mode": "async",
        "strategy.name": "fedbuff",
        "train.rounds": 8,
        "async.concurrency": 8,
        "async.buffer_size": 4,
        "fleet.availability": "always",
    }
    return tiny_config.replace(**{**base, **sets})


def test_an_async_run_writes_a_row_per_update_with_version_and_staleness(
    tiny_config: RunConfig, tmp_path: Path
) -> None:
    cfg = async_config(tiny_config)
    res = greenfl.run(cfg, tmp_path)
    assert isinstance(build_loop(cfg), AsyncLoop)
    steps = rows(tmp_path, "SELECT round, selected, completed, start_s, end_s FROM rounds")
    assert [s[0] for s in steps] == list(range(1, 9)) and len(res.history) == 8
    assert all(sel == 4 and done == 4 for _, sel, done, _, _ in steps)  # a buffer of 4
    ups = rows(
        tmp_path,
        "SELECT round, client_id, model_version, staleness, start_s, compute_s + comm_s "
        "FROM client_rounds ORDER BY round, start_s",
    )
    assert len(ups) == 8 * 4
    for rnd, _, version, staleness, _, _ in ups:
        assert staleness == (rnd - 1) - version >= 0  # steps applied since its base
    # 8 slots and buffers of 4: from step 2 on, half the updates trained from an older model
    assert max(s for _, _, _, s, _, _ in ups) >= 1
    # no client twice in one buffer (the ledger's key), nor in flight twice at once
    for rnd in range(1, 9):
        ids = [c for r, c, *_ in ups if r == rnd]
        assert len(ids) == len(set(ids))
    # each update ends by its step's end, within the simulated clock's order
    end_of = {s[0]: s[4] for s in steps}
    for rnd, _, _, _, start_s, dur_s in ups:
        assert start_s + dur_s <= end_of[rnd] + 1e-9


def test_every_update_is_accounted_over_its_own_interval(
    tiny_config: RunConfig, tmp_path: Path
) -> None:
    """A client's intensity is its region's mean over [its start, its end], not the
    step's: checked against the fleet's hourly curve, integrated here by hand."""
    cfg = async_config(tiny_config, **{"fleet.start_time": "2026-01-15T07:59:59Z"})
    loop = build_loop(cfg, tmp_path)
    loop.run()
    loop.ledger.close()
    got = rows(
        tmp_path,
        "SELECT region, start_s, compute_s + comm_s, ci_g_per_kwh FROM client_rounds",
    )
    fleet, sources = loop.parts.fleet, loop.parts.sources
    starts = {s for _, s, _, _ in got}
    assert len(starts) > 2  # updates started at different times
    for region, start_s, dur_s, ci in got:
        r = fleet.region_index(region)
        grid = np.linspace(start_s, start_s + dur_s, 2001)
        by_hand = np.trapezoid([float(sources.mean(r, t, t + 1e-6)) for t in grid], grid) / max(
            dur_s, 1e-12
        )
        assert ci == pytest.approx(by_hand, rel=1e-3)


def test_same_config_and_seed_give_the_same_ledger(tiny_config: RunConfig, tmp_path: Path) -> None:
    cfg = async_config(tiny_config, **{"fleet.dropout_prob": 0.2})
    greenfl.run(cfg, tmp_path / "a")
    greenfl.run(cfg, tmp_path / "b")
    sql = (
        "SELECT round, client_id, status, model_version, staleness, start_s, "
        "carbon_operational_g FROM client_rounds ORDER BY round, client_id"
    )
    a, b = rows(tmp_path / "a", sql), rows(tmp_path / "b", sql)
    assert [r[:5] for r in a] == [r[:5] for r in b]
    assert np.allclose([r[5:] for r in a], [r[5:] for r in b], rtol=1e-12)


def test_drop_outs_are_counted_and_never_aggregated(tiny_config: RunConfig, tmp_path: Path) -> None:
    cfg = async_config(tiny_config, **{"fleet.dropout_prob": 0.3})
    greenfl.run(cfg, tmp_path)
    got = rows(
        tmp_path,
        "SELECT round, status, compute_s, energy_compute_j + energy_comm_j FROM client_rounds",
    )
    dropped = [g for g in got if g[1] == "dropped"]
    assert dropped, "a 30% drop-out rate over 32+ updates drops someone"
    assert all(e > 0 for *_, e in dropped)  # their work (or download) until then counts
    steps = rows(tmp_path, "SELECT round, completed FROM rounds")
    for rnd, completed in steps:
        # a step waits for 4 updates; the clients that dropped meanwhile are extra rows
        assert completed == 4
        assert sum(1 for g in got if g[0] == rnd and g[1] == "completed") == 4


def test_resume_continues_the_flow_in_flight(tiny_config: RunConfig, tmp_path: Path) -> None:
    cfg = async_config(tiny_config)
    straight = greenfl.run(cfg, tmp_path / "a")
    crashed = build_loop(cfg, tmp_path / "b")
    for _ in range(3):
        crashed.run_round()
    crashed.ledger.close()  # as if killed after step 3, with 8 clients in flight
    loop = build_loop(cfg, tmp_path / "b", resume=True)
    assert loop.state.round == 3
    loop.run()
    loop.ledger.finish("completed", "done")
    sql = "SELECT round, client_id, model_version, staleness FROM client_rounds ORDER BY 1, 2"
    assert rows(tmp_path / "b", sql) == rows(tmp_path / "a", sql)
    accs = [a for (a,) in rows(tmp_path / "b", "SELECT accuracy FROM rounds ORDER BY round")]
    assert accs == pytest.approx([r.accuracy for r in straight.history], abs=1e-6)


def test_the_carbon_aware_throttle_trains_on_cleaner_grids(
    tiny_config: RunConfig, tmp_path: Path
) -> None:
    """Over the same seed and work, dispatching only where the grid is near its lowest of
    the next hours lowers the intensity the updates were trained at."""
    sets = {
        "train.rounds": 20,
        "fleet.availability": "diurnal",
        "async.min_concurrency_share": 0.0,
        "async.carbon_slack_s": 6 * 3600.0,
    }
    plain = greenfl.run(async_config(tiny_config, **sets), tmp_path / "plain")
    aware = greenfl.run(
        async_config(tiny_config, **sets, **{"async.carbon_aware": True}), tmp_path / "aware"
    )
    sql = "SELECT SUM(ci_g_per_kwh * wall_energy_j) / SUM(wall_energy_j) FROM client_rounds"
    (ci_plain,), (ci_aware,) = rows(tmp_path / "plain", sql)[0], rows(tmp_path / "aware", sql)[0]
    assert ci_aware < ci_plain
    # waiting for clean hours costs simulated time
    assert aware.history[-1].sim_time_s > plain.history[-1].sim_time_s
    assert math.isfinite(ci_aware)


def test_a_robust_strategy_aggregates_each_buffer_with_compressed_updates(
    tiny_config: RunConfig, tmp_path: Path
) -> None:
    """The buffer goes to a robust aggregator (the deltas scaled by their staleness
    weights), and the updates travel through the configured codec (8-bit: a quarter of
    the float32 bytes, plus its header)."""
    cfg = async_config(
        tiny_config, **{"strategy.name": "median", "compression.name": "q8", "train.rounds": 6}
    )
    res = greenfl.run(cfg, tmp_path)
    assert len(res.history) == 6 and math.isfinite(res.history[-1].accuracy)
    numel = sum(p.numel() for p in build_loop(cfg).parts.model.parameters())
    up = {b for (b,) in rows(tmp_path, "SELECT DISTINCT bytes_up FROM client_rounds")}
    assert len(up) == 1 and numel <= up.pop() < 4 * numel * 0.3


def test_planned_durations_are_the_estimates_and_the_modelled_arrivals(
    tiny_config: RunConfig, tmp_path: Path
) -> None:
    """An update arrives when planned: the duration-only estimate equals the priced one,
    and the ledger's accounted time of each update (no drop-outs) matches it."""
    loop = build_loop(async_config(tiny_config), tmp_path)
    costs, clients = loop.parts.costs, np.arange(20)
    est, _ = costs.estimate(clients, 0.0, 1)
    assert np.allclose(costs.durations_s(clients, 1), est.duration_s, rtol=1e-12)
    loop.run()
    loop.ledger.close()
    got = rows(tmp_path, "SELECT client_id, compute_s + comm_s FROM client_rounds")
    planned = dict(zip(clients.tolist(), est.duration_s.tolist(), strict=True))
    for cid, dur_s in got:
        assert dur_s == pytest.approx(planned[cid], rel=1e-9)


def test_a_large_population_fills_slots_from_a_pool(tiny_config: RunConfig, tmp_path: Path) -> None:
    cfg = async_config(tiny_config, **{"async.max_candidates": 5, "train.rounds": 4})
    loop = build_loop(cfg, tmp_path)
    loop.run_round()
    flow = loop.flow
    assert isinstance(flow, AsyncFlow)
    pool = flow._candidates()  # noqa: SLF001 - the pool itself is what is tested
    assert 0 < len(pool) <= 5 and not loop.flow.busy[pool].any()
    loop.ledger.close()
