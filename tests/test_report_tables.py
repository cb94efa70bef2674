"""The data behind every plot of the report, on a hand-written ledger with known numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from report_fixtures import HAND_GROUPS, write_hand_ledger

from greenfl.report import equivalents as eq
from greenfl.report.compare import expand_run_dirs, ratio, ratio_table, run_row, unique_names
from greenfl.report.headline import headline_metrics, summary_value
from greenfl.report.run_data import ReportError, open_run
from greenfl.report.tables import (
    breakdown,
    group_carbon,
    incident_kinds,
    incidents,
    jain_index,
    participation,
    round_series,
)


@pytest.fixture
def hand_run(tmp_path: Path) -> Path:
    write_hand_ledger(tmp_path / "hand")
    return tmp_path / "hand"


def test_round_series_splits_and_sums(hand_run: Path) -> None:
    with open_run(hand_run) as run:
        s = round_series(run.conn)
        b = breakdown(run.conn)
    assert s.rounds == [1, 2]
    # round 1: client 0 op 4 g over 3 J compute + 1 J comm -> 3 g + 1 g; client 1 op 2 g over
    # 1 J + 1 J -> 1 g + 1 g. Round 2: client 0 again 3 + 1; client 2 all comm: 0 + 1.
    assert s.compute_g == pytest.approx([4.0, 3.0])
    assert s.comm_g == pytest.approx([2.0, 2.0])
    assert s.server_g == pytest.approx([2.0, 3.0])
    assert s.embodied_g == pytest.approx([1.5, 0.5])
    assert s.carbon_g == pytest.approx([9.5, 8.5])
    assert s.cum_carbon_g == pytest.approx([9.5, 18.0])
    assert s.energy_j == pytest.approx([4 + 2 + 10, 4 + 2 + 20])
    assert s.cum_carbon_g[-1] == pytest.approx(b.total_g)
    assert s.cum_energy_j[-1] == pytest.approx(b.total_j)
    assert s.accuracy == [0.5, 0.75]


def test_group_carbon_sums_to_client_total(hand_run: Path) -> None:
    with open_run(hand_run) as run:
        regions = group_carbon(run.conn, "region")
        devices = group_carbon(run.conn, "device")
        b = breakdown(run.conn)
    assert [g.name for g in regions] == ["FR", "IN"]  # FR 9 g, IN 4 g
    fr, ind = regions
    assert (fr.compute_g, fr.comm_g, fr.embodied_g, fr.client_rounds) == pytest.approx(
        (6.0, 2.0, 1.0, 2)
    )
    assert ind.total_g == pytest.approx(1 + 1 + 1 + 1)
    client_g = b.client_operational_g + b.embodied_g
    assert sum(g.total_g for g in regions) == pytest.approx(client_g)
    assert sum(g.total_g for g in devices) == pytest.approx(client_g)
    with pytest.raises(ValueError):
        group_carbon(run.conn, "client_id; DROP TABLE rounds")


@pytest.mark.parametrize(
    ("values", "expected"),
    [([1, 1, 1, 1], 1.0), ([4, 0, 0, 0], 0.25), ([1, 2, 3], 36 / 42), ([], math.nan)],
)
def test_jain_index(values: list[int], expected: float) -> None:
    got = jain_index(values)
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)


def test_participation_counts_never_selected_clients(hand_run: Path) -> None:
    with open_run(hand_run) as run:
        p = participation(run.conn, "region", HAND_GROUPS["region"])  # client 3 (NO) unseen
        seen_only = participation(run.conn, "region")
        sized = participation(run.conn, "region", None, num_clients=4)
    by = {g.name: g for g in p.groups}
    assert (by["FR"].clients, by["FR"].selected, by["FR"].completed) == (1, 2, 2)
    assert (by["IN"].clients, by["IN"].selected, by["IN"].completed) == (2, 2, 0)
    assert by["IN"].not_aggregated == 2
    assert by["NO"].clients == 1 and by["NO"].selected == 0 and math.isnan(by["NO"].jain)
    assert by["FR"].completed_per_client == 2.0
    # completed per client: [2, 0, 0, 0] -> 4 / (4 * 4)
    assert p.jain_all == pytest.approx(0.25)
    assert p.num_clients == 4
    # Without the population: clients 0, 1, 2 -> [2, 0, 0] -> 4 / (3 * 4)
    assert seen_only.jain_all == pytest.approx(1 / 3) and seen_only.num_clients == 3
    assert "NO" not in {g.name for g in seen_only.groups}
    # The population's size alone still counts client 3 at zero over all clients.
    assert sized.jain_all == pytest.approx(0.25) and sized.num_clients == 4


def test_incidents_table(hand_run: Path) -> None:
    with open_run(hand_run) as run:
        kinds = incident_kinds(run.conn)
        rows, total = incidents(run.conn, limit=1)
    assert {(k.status, k.reason, k.count) for k in kinds} == {
        ("straggler", "deadline", 1),
        ("dropped", "battery", 1),
    }
    assert sum(k.carbon_g for k in kinds) == pytest.approx(3.0 + 1.0)
    assert sum(k.energy_j for k in kinds) == pytest.approx(2.0 + 2.0)
    assert total == 2 and len(rows) == 1
    assert rows[0]["client_id"] == 1 and rows[0]["reason"] == "deadline"
    assert rows[0]["active_s"] == pytest.approx(2.0)


def test_equivalents_against_their_factors() -> None:
    # 400 g is one US mile (EPA: ~400 g/mile); 0.012 kWh is one phone charge.
    assert eq.car_distance_km(400.0) == pytest.approx(1.609344)
    assert eq.car_distance_km(107.0, eq.CAR_EU_NEW_G_PER_KM) == pytest.approx(1.0)
    assert eq.phone_charges(0.012 * 3.6e6) == pytest.approx(1.0)
    assert eq.led_hours(0.01 * 3.6e6) == pytest.approx(1.0)
    # a kettle: 4186 J/(kg K) * 1 kg * 80 K / 0.9 = 372,089 J
    assert eq.kettle_boils(4186 * 80 / 0.9) == pytest.approx(1.0)
    items = {e.key: e for e in eq.equivalents(248.548, 43200.0)}
    assert items["car_us_km"].value == pytest.approx(1.0, rel=1e-4)
    assert items["phone_charges"].value == pytest.approx(1.0)
    assert all(e.source for e in items.values())
    v, unit = eq.humanize_distance_km(0.0123)
    assert unit == "m" and v == pytest.approx(12.3)


def test_headline_numbers_equal_summary(hand_run: Path) -> None:
    summary = json.loads((hand_run / "summary.json").read_text())
    with open_run(hand_run) as run:
        metrics = {m.key: m for m in headline_metrics(run)}
    for m in metrics.values():
        if m.summary_key is not None:
            assert m.value == summary_value(summary, m.summary_key)
    assert metrics["carbon_server"].value == pytest.approx(5.0)
    assert metrics["carbon_total"].value == pytest.approx(18.0)
    # (0.75 - 0.25) * 100 points over 16 J + 26 J
    assert metrics["intelligence_per_kwh"].value == pytest.approx(50 / (42 / 3.6e6))
    assert metrics["carbon_to_target"].display == "n/a"


def test_ratio_table_against_the_first(hand_run: Path, tmp_path: Path) -> None:
    with open_run(hand_run) as run:
        a = run_row(run, "a")
    b = type(a)("b", 2, 0.5, a.energy_j * 2, a.carbon_g / 4, None, a.intelligence_per_kwh)
    r = ratio_table([a, b])
    assert r[0]["carbon"] == 1.0 and r[1]["carbon"] == pytest.approx(0.25)
    assert r[1]["energy"] == pytest.approx(2.0)
    assert r[1]["final_accuracy"] == pytest.approx(0.5 / 0.75)
    assert r[1]["carbon_to_target"] is None
    assert ratio(1.0, 0.0) is None


def test_expand_run_dirs_and_names(hand_run: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    write_hand_ledger(sweep / "seed1")
    write_hand_ledger(sweep / "seed0")
    (sweep / "compare.json").write_text("{}")
    assert expand_run_dirs([sweep]) == [sweep / "seed0", sweep / "seed1"]
    assert expand_run_dirs([hand_run, sweep / "seed0"]) == [hand_run, sweep / "seed0"]
    with pytest.raises(ReportError, match="no run folder"):
        expand_run_dirs([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match="empty"):
        expand_run_dirs([tmp_path / "empty"])
    assert unique_names([Path("x/a"), Path("y/a")]) == ["x/a", "y/a"]


def test_open_run_errors(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="ledger.sqlite"):
        open_run(tmp_path)
    (tmp_path / "ledger.sqlite").write_text("not sqlite at all, just text" * 10)
    with pytest.raises(ReportError, match="not a greenfl ledger"):
        open_run(tmp_path)
