"""The report's section on clients' own test data: who the model serves badly. Read from
the ledger's rounds.client_acc_* columns only."""

from __future__ import annotations

import sqlite3

from greenfl.report.html_parts import table

Section = tuple[str, str, str]
MAX_ROWS = 60  # evaluated rounds shown; a long run keeps the first and the latest


def _pct(v: float) -> str:
    return f"{v * 100:.2f}%"


def client_accuracy_section(conn: sqlite3.Connection) -> Section | None:
    """None for a run without client evaluations (or a ledger older than the columns)."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(rounds)")}
    if "client_acc_mean" not in have:
        return None
    rows = conn.execute(
        "SELECT round, accuracy, client_acc_mean, client_acc_p10, client_acc_worst_decile, "
        "client_acc_clients FROM rounds WHERE client_acc_mean IS NOT NULL ORDER BY round"
    ).fetchall()
    if not rows:
        return None
    if len(rows) > MAX_ROWS:
        rows = rows[: MAX_ROWS // 2] + rows[-MAX_ROWS // 2 :]
    body = [
        (rnd, "n/a" if acc is None else _pct(acc), _pct(mean), _pct(p10), _pct(worst), n)
        for rnd, acc, mean, p10, worst, n in rows
    ]
    lead = (
        "<p class='lead'>The global model on each sampled client's own test data "
        "(eval.every, eval.clients): the mean over clients, the 10th percentile, and the "
        "mean of the worst decile, as LEAF and q-FFL report them. A gap between the central "
        "accuracy and the worst decile is the clients the model serves badly.</p>"
    )
    headers = ("round", "central test", "client mean", "client p10", "worst decile", "clients")
    html = lead + table(headers, body, numeric={0, 1, 2, 3, 4, 5})
    return ("client-accuracy", "Accuracy on clients' own test data", html)
