import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

import greenfl
from greenfl.config import RunConfig
from greenfl.ledger import read_ledger


def _sum(conn: sqlite3.Connection, sql: str) -> float:
    return float(conn.execute(sql).fetchone()[0] or 0.0)


def test_ledger_sums_equal_the_summary(tiny_config: RunConfig, tmp_path: Path) -> None:
    cfg = tiny_config.replace(**{"fleet.dropout_prob": 0.3, "fleet.over_selection": 0.4})
    res = greenfl.run(cfg, tmp_path)
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s == json.loads(json.dumps(res.summary))
    expected_keys = {
        "rounds_completed",
        "final_accuracy",
        "best_accuracy",
        "target_accuracy",
        "rounds_to_target",
        "sim_time_s",
        "wall_time_s",
        "energy_j",
        "carbon_g",
        "carbon_g_to_target",
        "clients_selected",
        "clients_completed",
        "clients_dropped",
        "clients_distinct",
        "client_accuracy",
        "privacy",
        "attack",
        "region_accuracy",
        "submodel",
    }
    assert set(s) == expected_keys
    assert s["submodel"] == {"name": "none"}
    assert s["privacy"] == {"epsilon": None, "delta": None}
    assert s["attack"] == {"name": "none", "fraction": 0.0, "backdoor_success": None}
    assert set(s["energy_j"]) == {"client_compute", "client_comm", "server", "total"}
    assert set(s["carbon_g"]) == {"operational", "embodied", "total"}
    conn = sqlite3.connect(tmp_path / "ledger.sqlite")
    assert s["energy_j"]["client_compute"] == pytest.approx(
        _sum(conn, "SELECT SUM(energy_compute_j) FROM client_rounds")
    )
    assert s["energy_j"]["client_comm"] == pytest.approx(
        _sum(conn, "SELECT SUM(energy_comm_j) FROM client_rounds")
    )
    assert s["energy_j"]["server"] == pytest.approx(
        _sum(conn, "SELECT SUM(server_energy_j) FROM rounds")
    )
    op = _sum(conn, "SELECT SUM(carbon_operational_g) FROM client_rounds") + _sum(
        conn, "SELECT SUM(server_carbon_g) FROM rounds"
    )
    assert s["carbon_g"]["operational"] == pytest.approx(op)
    assert s["carbon_g"]["embodied"] == pytest.approx(
        _sum(conn, "SELECT SUM(carbon_embodied_g) FROM client_rounds")
    )
    assert s["clients_selected"] == _sum(conn, "SELECT COUNT(*) FROM client_rounds")
    assert s["clients_distinct"] == _sum(
        conn,
        "SELECT COUNT(DISTINCT client_id) FROM client_rounds "
        "WHERE status IN ('completed', 'partial')",
    )
    assert s["rounds_completed"] == 3
    # over-selection asks ceil(5 x 1.4) = 7 per round
    assert _sum(conn, "SELECT MAX(selected) FROM rounds") == 7
    statuses = {r[0] for r in conn.execute("SELECT DISTINCT status FROM client_rounds")}
    assert "completed" in statuses and statuses & {"straggler", "dropped"}
    runs = read_ledger(tmp_path)
    assert runs.config["train"]["rounds"] == 3 and runs.run["status"] == "completed"


def test_client_rows_recompute_by_hand_from_the_fleet(
    tiny_config: RunConfig, one_device_fleet: Path, tmp_path: Path
) -> None:
    cfg = tiny_config.replace(**{"fleet.catalog": str(one_device_fleet)})
    greenfl.run(cfg, tmp_path)
    led = read_ledger(tmp_path)
    for row in led.client_rounds:
        assert row["status"] == "completed"
        assert row["compute_s"] == pytest.approx(row["flops"] / 1e9)
        assert row["energy_compute_j"] == pytest.approx(2.0 * row["compute_s"])
        comm_s = row["bytes_up"] * 8 / 8e6 + row["bytes_down"] * 8 / 16e6
        assert row["comm_s"] == pytest.approx(comm_s)
        e_comm = 1.0 * comm_s + (row["bytes_up"] + row["bytes_down"]) / 1e9 * 0.01 * 3.6e6
        assert row["energy_comm_j"] == pytest.approx(e_comm)
        assert row["ci_g_per_kwh"] == 400.0
        op = (row["energy_compute_j"] + row["energy_comm_j"]) / 3.6e6 * 400
        assert row["carbon_operational_g"] == pytest.approx(op)
        emb = 50_000 * (row["compute_s"] + row["comm_s"]) / (3 * 8766 * 3600 * 0.25)
        assert row["carbon_embodied_g"] == pytest.approx(emb)
        assert row["bytes_down"] == row["bytes_up"] == 4 * 4810  # float32 MLP 64-64-10
    for r in led.rounds:
        # modelled from counted work; shared (the default mode): 100 W minus 20 W idle
        assert r["server_s"] == pytest.approx(r["server_flops"] / 3e11)
        assert r["server_energy_j"] == pytest.approx((100.0 - 20.0) * r["server_s"] * 1.5)
        assert r["server_carbon_g"] == pytest.approx(r["server_energy_j"] / 3.6e6 * 400)


def test_stragglers_and_dropouts_are_accounted(
    tiny_config: RunConfig, one_device_fleet: Path, tmp_path: Path
) -> None:
    cfg = tiny_config.replace(**{"fleet.catalog": str(one_device_fleet), "fleet.dropout_prob": 0.5})
    greenfl.run(cfg, tmp_path)
    led = read_ledger(tmp_path)
    dropped = [r for r in led.client_rounds if r["status"] == "dropped"]
    done = [r for r in led.client_rounds if r["status"] == "completed"]
    assert dropped and done
    full = max(r["compute_s"] + r["comm_s"] for r in done)
    for r in dropped:
        assert 0 <= r["compute_s"] + r["comm_s"] <= full + 1e-9
        assert r["energy_compute_j"] == pytest.approx(2.0 * r["compute_s"])
    for rnd in led.rounds:
        assert rnd["completed"] == sum(1 for r in done if r["round"] == rnd["round"])


def test_deadline_makes_stragglers(
    tiny_config: RunConfig, one_device_fleet: Path, tmp_path: Path
) -> None:
    cfg = tiny_config.replace(**{"fleet.catalog": str(one_device_fleet), "fleet.deadline_s": 0.01})
    greenfl.run(cfg, tmp_path)
    led = read_ledger(tmp_path)
    assert all(r["status"] == "straggler" for r in led.client_rounds)
    assert all(r["compute_s"] + r["comm_s"] == pytest.approx(0.01) for r in led.client_rounds)
    assert all(r["energy_comm_j"] > 0 for r in led.client_rounds)  # wasted work still counts


def test_same_seed_same_accuracy_bit_for_bit(tiny_config: RunConfig) -> None:
    a = greenfl.run(tiny_config)
    b = greenfl.run(tiny_config)
    assert [r.accuracy for r in a.history] == [r.accuracy for r in b.history]
    c = greenfl.run(tiny_config.replace(seed=1))
    assert [r.accuracy for r in a.history] != [r.accuracy for r in c.history]


def test_stop_at_target_and_carbon_budget(tiny_config: RunConfig) -> None:
    res = greenfl.run(
        tiny_config.replace(
            **{"train.rounds": 40, "train.local_epochs": 5, "stop.target_accuracy": 0.5}
        )
    )
    assert res.summary["rounds_to_target"] == res.summary["rounds_completed"] < 40
    assert res.summary["carbon_g_to_target"] == pytest.approx(res.summary["carbon_g"]["total"])
    first = greenfl.run(tiny_config.replace(**{"train.rounds": 1}))
    budget = first.summary["carbon_g"]["total"] * 2.5
    res = greenfl.run(tiny_config.replace(**{"train.rounds": 40, "stop.carbon_budget_g": budget}))
    assert "carbon budget" in res.stop_reason
    # No round starts once the carbon spent would pass the budget: only the last round,
    # priced at what the one before cost, can carry the total over it.
    assert res.summary["carbon_g"]["total"] - res.history[-1].carbon_g <= budget


def test_any_torch_module_through_the_api(tiny_config: RunConfig) -> None:
    from torch import nn

    model = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))
    res = greenfl.run(tiny_config, model=model)
    assert res.summary["rounds_completed"] == 3 and res.final_accuracy > 0.1


def test_callbacks_can_stop_a_run(tiny_config: RunConfig) -> None:
    seen = []

    def stop_after_two(rec, loop):  # noqa: ANN001, ANN202
        seen.append(rec.round)
        return rec.round >= 2, {}

    res = greenfl.run(tiny_config.replace(**{"train.rounds": 10}), callbacks=[stop_after_two])
    assert seen == [1, 2] and res.summary["rounds_completed"] == 2


@pytest.mark.slow
def test_fedavg_really_learns_digits() -> None:
    cfg = greenfl.load_config(None, ["train.rounds=30"])
    assert (cfg.data.num_clients, cfg.train.clients_per_round, cfg.data.partition) == (
        100,
        10,
        "iid",
    )
    res = greenfl.run(cfg)
    assert res.summary["final_accuracy"] >= 0.90


def test_reports_in_any_order_get_their_own_table_rows() -> None:
    # A deployment's reports arrive in any order, and some may be missing.
    from greenfl.accounting.cohort import rows_of

    cohort = np.array([40, 7, 19, 3], dtype=np.int64)
    cohort_rows = np.array([400, 70, 190, 30], dtype=np.int64)
    got = rows_of(np.array([3, 40, 19], dtype=np.int64), cohort, cohort_rows)
    assert got.tolist() == [30, 400, 190]
    with pytest.raises(ValueError, match="not in the cohort"):
        rows_of(np.array([3, 41], dtype=np.int64), cohort, cohort_rows)
