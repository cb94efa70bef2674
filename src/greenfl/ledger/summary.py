"""summary.json, computed from the ledger rows so that its totals equal the ledger's sums."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import astuple
from typing import Any

from greenfl.ledger.schema import AGGREGATED, AGGREGATED_SQL


def summarize(
    conn: sqlite3.Connection, target_accuracy: float | None, wall_time_s: float
) -> dict[str, Any]:
    """The keys of DESIGN.md, exactly."""
    rounds = conn.execute(
        "SELECT round, end_s, accuracy, server_energy_j, server_carbon_g FROM rounds ORDER BY round"
    ).fetchall()
    per_round = {
        r: (comp, comm, op, emb)
        for r, comp, comm, op, emb in conn.execute(
            "SELECT round, SUM(energy_compute_j), SUM(energy_comm_j), "
            "SUM(carbon_operational_g), SUM(carbon_embodied_g) FROM client_rounds GROUP BY round"
        )
    }
    counts = dict(
        conn.execute("SELECT status, COUNT(*) FROM client_rounds GROUP BY status").fetchall()
    )
    e_compute = e_comm = e_server = c_client_op = c_embodied = c_server = 0.0
    accuracies: list[float] = []
    rounds_to_target: int | None = None
    carbon_to_target: float | None = None
    for n, (rnd, _end, acc, srv_j, srv_g) in enumerate(rounds, start=1):
        comp, comm, op, emb = per_round.get(rnd, (0.0, 0.0, 0.0, 0.0))
        e_compute += comp or 0.0
        e_comm += comm or 0.0
        e_server += srv_j
        c_client_op += op or 0.0
        c_embodied += emb or 0.0
        c_server += srv_g
        if acc is not None:
            accuracies.append(acc)
        if (
            rounds_to_target is None
            and target_accuracy is not None
            and acc is not None
            and acc >= target_accuracy
        ):
            rounds_to_target = n
            carbon_to_target = c_client_op + c_embodied + c_server
    operational = c_client_op + c_server
    # Distinct clients whose update was aggregated at least once: how many took part, which
    # clients_completed (client-rounds) cannot say when the same few are picked every round.
    (clients_distinct,) = conn.execute(
        f"SELECT COUNT(DISTINCT client_id) FROM client_rounds WHERE {AGGREGATED_SQL}"
    ).fetchone()
    last_eval = conn.execute(
        "SELECT round, client_acc_mean, client_acc_p10, client_acc_worst_decile, "
        "client_acc_clients FROM rounds WHERE client_acc_mean IS NOT NULL "
        "ORDER BY round DESC LIMIT 1"
    ).fetchone()
    return {
        "rounds_completed": len(rounds),
        "final_accuracy": accuracies[-1] if accuracies else None,
        "best_accuracy": max(accuracies) if accuracies else None,
        "target_accuracy": target_accuracy,
        "rounds_to_target": rounds_to_target,
        "sim_time_s": float(rounds[-1][1]) if rounds else 0.0,
        "wall_time_s": wall_time_s,
        "energy_j": {
            "client_compute": e_compute,
            "client_comm": e_comm,
            "server": e_server,
            "total": e_compute + e_comm + e_server,
        },
        "carbon_g": {
            "operational": operational,
            "embodied": c_embodied,
            "total": operational + c_embodied,
        },
        "carbon_g_to_target": carbon_to_target,
        "clients_selected": sum(counts.values()),
        # Aggregated updates: all the round's work, or partial work (ledger status partial).
        "clients_completed": sum(counts.get(k, 0) for k in AGGREGATED),
        "clients_dropped": sum(v for k, v in counts.items() if k not in AGGREGATED),
        "clients_distinct": int(clients_distinct),
        "client_accuracy": client_accuracy(*last_eval) if last_eval else None,
    }


def client_accuracy(
    round_idx: int, mean: float, p10: float, worst_decile: float, clients: int
) -> dict[str, float | int]:
    """summary.json's client_accuracy: the last evaluation on clients' own test data."""
    return {
        "mean": mean,
        "p10": p10,
        "worst_decile": worst_decile,
        "clients": clients,
        "round": round_idx,
    }


def unaccounted_summary(
    history: Sequence[Any], target_accuracy: float | None, wall_time_s: float, clients_distinct: int
) -> dict[str, Any]:
    """summary.json's keys for a run without accounting: training results from the round
    records, every energy and carbon figure None (not measured, rather than zero).
    ``clients_distinct``: the clients with an aggregated update (no ledger rows to count)."""
    acc = [r.accuracy for r in history]
    reached = next(
        (r.round for r in history if target_accuracy and r.accuracy >= target_accuracy), None
    )
    selected = sum(r.selected for r in history)
    completed = sum(r.completed for r in history)
    evaluated = [r for r in history if r.client_accuracy is not None]
    last = evaluated[-1] if evaluated else None
    return {
        "rounds_completed": len(history),
        "final_accuracy": acc[-1] if acc else None,
        "best_accuracy": max(acc) if acc else None,
        "target_accuracy": target_accuracy,
        "rounds_to_target": reached,
        "sim_time_s": None,
        "wall_time_s": wall_time_s,
        "energy_j": dict.fromkeys(("client_compute", "client_comm", "server", "total")),
        "carbon_g": dict.fromkeys(("operational", "embodied", "total")),
        "carbon_g_to_target": None,
        "clients_selected": selected,
        "clients_completed": completed,
        "clients_dropped": selected - completed,
        "clients_distinct": clients_distinct,
        "client_accuracy": (
            client_accuracy(last.round, *astuple(last.client_accuracy)) if last else None
        ),
    }


def safety_summary(
    last_probes: dict[str, float | None],
    attack_name: str,
    attack_fraction: float,
    privacy_delta: float | None,
) -> dict[str, Any]:
    """summary.json's ``privacy`` and ``attack`` keys, from the last round's probe columns:
    epsilon and delta are null without differential privacy, backdoor_success null unless
    the attack is a backdoor."""
    epsilon = last_probes.get("epsilon") if privacy_delta is not None else None
    success = last_probes.get("backdoor_success") if attack_name == "backdoor" else None
    return {
        "privacy": {
            "epsilon": epsilon,
            "delta": privacy_delta,
        },
        "attack": {
            "name": attack_name,
            "fraction": attack_fraction,
            "backdoor_success": success,
        },
    }


def last_round_columns(conn: sqlite3.Connection, columns: Sequence[str]) -> dict[str, Any]:
    """The last round's values of ``columns`` (each a name of ROUND_COLUMNS), or {} before
    the first round."""
    row = conn.execute(
        f"SELECT {', '.join(columns)} FROM rounds ORDER BY round DESC LIMIT 1"
    ).fetchone()
    return dict(zip(columns, row, strict=True)) if row else {}
