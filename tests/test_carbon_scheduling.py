from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

import greenfl
from greenfl.config import RunConfig
from greenfl.footprint.intensity import Trace
from greenfl.ledger import read_ledger
from greenfl.scheduling.carbon import CarbonAwareScheduler, CarbonSchedulerParams
from tests.fleets import write_fleet

START = datetime(2026, 1, 15, 0, 0, tzinfo=timezone.utc)
# Hourly trace from the run's start: the trough (50) is 03:00-04:00.
HOURLY = [400.0, 350.0, 200.0, 50.0, 300.0, 500.0, 600.0, 600.0]


def _trace_csv(path: Path) -> Path:
    """HOURLY from the run's start, and the same hours the day before: the planners' persistence
    forecast (yesterday's hours) then sees the trough where it is."""
    rows = ["timestamp,ci_g_per_kwh"]
    for day in (-1, 0):
        for h, v in enumerate(HOURLY):
            rows.append(f"{(START + timedelta(days=day, hours=h)).isoformat()},{v}")
        if day == -1:  # the rest of yesterday: dear, so no wait is planned into it
            rows.append(f"{(START + timedelta(days=-1, hours=len(HOURLY))).isoformat()},600.0")
    path.write_text("\n".join(rows) + "\n")
    return path


def _plan(slack_s: float, idle_g_per_s: float = 0.0) -> float:
    trace = Trace.from_csv(_trace_csv(Path(_plan.tmp) / "t.csv"), START)  # type: ignore[attr-defined]
    sched = CarbonAwareScheduler(CarbonSchedulerParams(slack_s=slack_s, step_s=900.0))
    return sched.plan(
        0.0,
        lambda starts: trace.mean(starts, starts + 60.0),  # a one-minute round
        lambda t0, starts: idle_g_per_s * (starts - t0),
    )


@pytest.fixture(autouse=True)
def _tmp(tmp_path: Path) -> None:
    _plan.tmp = tmp_path  # type: ignore[attr-defined]


def test_waits_for_the_trough_within_its_slack() -> None:
    assert _plan(slack_s=6 * 3600) == pytest.approx(3 * 3600)


def test_never_waits_past_its_slack() -> None:
    # The trough is 3 h away; with 2.5 h of slack the best it may do is 2.5 h (02:30, 200).
    for slack in (0.0, 600.0, 2.5 * 3600, 2 * 3600 + 100):
        wait = _plan(slack_s=slack)
        assert 0.0 <= wait <= slack
    assert _plan(slack_s=2.5 * 3600) == pytest.approx(2 * 3600)  # 02:00 is already 200


def test_idle_cost_can_make_waiting_not_worth_it() -> None:
    # Waiting 3 h saves 350 g-units; idling at 1 unit/s for 3 h costs 10800.
    assert _plan(slack_s=6 * 3600, idle_g_per_s=1.0) == 0.0


def test_wait_budget_is_shared_across_rounds() -> None:
    sched = CarbonAwareScheduler(
        CarbonSchedulerParams(slack_s=3600.0, step_s=900.0, max_total_wait_s=1800.0)
    )
    flat_then_low = lambda s: np.where(s >= 1800.0, 1.0, 2.0)  # noqa: E731
    no_idle = lambda t0, s: np.zeros(len(s))  # noqa: E731
    assert sched.plan(0.0, flat_then_low, no_idle) == pytest.approx(1800.0)
    assert sched.plan(5000.0, lambda s: np.where(s > 5000, 0.0, 1.0), no_idle) == 0.0


def _traced_fleet(path: Path, trace_name: str, server_idle_w: float) -> Path:
    """One device in one region R following the trace, and a dedicated server idling at
    ``server_idle_w``."""
    return write_fleet(
        path,
        devices=[{"name": "dev"}],
        regions=[{"name": "R", "ci": 300.0, "extra": f'trace = "{trace_name}"'}],
        entries=[{"device": "dev", "region": "R", "share": 1.0}],
        server_region="R",
        server_idle_w=server_idle_w,
    )


def test_loop_waits_counts_idle_energy_and_advances_the_clock(
    tiny_config: RunConfig, tmp_path: Path
) -> None:
    csv = _trace_csv(tmp_path / "trace.csv")
    fleet = _traced_fleet(tmp_path / "fleet.toml", csv.name, 1e-5)  # waiting pays off
    cfg = tiny_config.replace(
        **{
            "fleet.catalog": str(fleet),
            "fleet.start_time": START.isoformat(),
            "scheduling.name": "carbon",
            "scheduling.params.slack_s": 4 * 3600.0,
            "scheduling.params.step_s": 900.0,
        }
    )
    greenfl.run(cfg, tmp_path / "run")
    led = read_ledger(tmp_path / "run")
    first = led.rounds[0]
    assert first["wait_s"] == pytest.approx(3 * 3600)
    assert first["start_s"] == pytest.approx(3 * 3600)  # the round starts after the wait
    # dedicated: standby over the wait and over the clients' phase of the round
    standby_s = first["wait_s"] + first["end_s"] - first["start_s"] - first["server_s"]
    assert first["server_idle_energy_j"] == pytest.approx(1e-5 * standby_s * 1.5)
    assert first["server_energy_j"] >= first["server_idle_energy_j"]
    assert all(r["ci_g_per_kwh"] == pytest.approx(50.0) for r in led.client_rounds)
    assert all(r["wait_s"] <= 4 * 3600 for r in led.rounds)

    # The planners see yesterday's hours, never the curve itself: with yesterday flat, the
    # trough today is a surprise, and the round starts at once (and is charged today's 400).
    flat = tmp_path / "flat.csv"
    lines = _trace_csv(tmp_path / "t2.csv").read_text().splitlines()
    flat.write_text(
        "\n".join(lines[:1] + [ln.rsplit(",", 1)[0] + ",400.0" for ln in lines[1:10]] + lines[10:])
        + "\n"
    )
    fleet2 = _traced_fleet(tmp_path / "fleet2.toml", flat.name, 1e-5)
    greenfl.run(cfg.replace(**{"fleet.catalog": str(fleet2)}), tmp_path / "run2")
    assert read_ledger(tmp_path / "run2").rounds[0]["wait_s"] == 0.0
    assert [r["wait_s"] for r in led.rounds[1:]] == [0.0] * (len(led.rounds) - 1)
    # A dedicated server idling at 90 W x 1.5: waiting never pays, so it never waits.
    costly = _traced_fleet(tmp_path / "costly.toml", csv.name, 90.0)
    greenfl.run(cfg.replace(**{"fleet.catalog": str(costly)}), tmp_path / "costly")
    assert all(r["wait_s"] == 0.0 for r in read_ledger(tmp_path / "costly").rounds)


def test_wait_share_bounds_waits_by_the_rounds_time_so_far() -> None:
    """max_wait_share = 0.5: waits add at most half the rounds' own time to the run."""
    sched = CarbonAwareScheduler(
        CarbonSchedulerParams(slack_s=3600.0, step_s=900.0, max_wait_share=0.5)
    )
    later_is_cleaner = lambda s: -s  # noqa: E731  (always worth waiting longest)
    no_idle = lambda t0, s: np.zeros(len(s))  # noqa: E731
    assert sched.plan(0.0, later_is_cleaner, no_idle) == 0.0  # no rounds yet: no wait
    # 1,000 s of rounds: up to 500 s of waiting (the bound itself is a candidate start)
    assert sched.plan(1000.0, later_is_cleaner, no_idle) == pytest.approx(500.0)
    # 1,500 s so far, 500 of them waiting: 1,000 s of rounds allow 500 s, all spent
    assert sched.plan(1500.0, later_is_cleaner, no_idle) == 0.0
    # 3,000 s of rounds later (4,500 s in all): 0.5 x 4,000 - 500 = 1,500 s
    assert sched.plan(4500.0, later_is_cleaner, no_idle) == pytest.approx(1500.0)
