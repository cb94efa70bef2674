"""Asynchronous serving on loopback (issue 30 item 4): `greenfl serve` with engine.mode =
"async" takes updates as they come from clients of different speeds, and a kill -9 of the
server followed by `serve --resume` loses no accepted update and applies none twice."""

from __future__ import annotations

import re
import signal
import sqlite3
import time
from pathlib import Path

import pytest
import torch

from greenfl.core.errors import LedgerError
from greenfl.core.messages import ClientReport
from greenfl.deploy.server.pending import FILE_NAME, DuplicateTask, PendingStore
from greenfl.ledger.schema import AGGREGATED_SQL
from tests.integration.test_deploy import (
    Procs,
    ThreadClients,
    finish,
    free_port,
    max_round,
    procs,  # noqa: F401 - the fixture
    rows,
    wait_for,
)

ASYNC_CONFIG = """
seed = 3
[data]
num_clients = 3
[train]
rounds = {steps}
clients_per_round = 3
[engine]
mode = "async"
[strategy]
name = "fedbuff"
[async]
concurrency = 3
buffer_size = {k}
[fleet]
catalog = "builtin"
[deploy]
round_timeout_s = 60
join_timeout_s = 60
keepalive_s = 1
"""

AGG = AGGREGATED_SQL


def write_async_config(path: Path, steps: int, k: int) -> Path:
    path.write_text(ASYNC_CONFIG.format(steps=steps, k=k))
    return path


def report(cid: int, delta: torch.Tensor | None) -> ClientReport:
    return ClientReport(cid, "completed", None, delta, 30, 1e6, float("nan"), 100, 200, 0.5, 0.1)


def test_pending_store_keeps_order_never_reuses_a_number_and_refuses_a_duplicate(
    tmp_path: Path,
) -> None:
    store = PendingStore(tmp_path, fresh=True)
    d = torch.tensor([1.5, -2.0, 0.25])
    assert store.add("t-a", 0, 1.0, 2.0, report(4, d)) == 1
    assert store.add("t-b", 1, 1.5, 3.0, report(5, None)) == 2
    with pytest.raises(DuplicateTask):
        store.add("t-a", 0, 1.0, 2.5, report(4, d))
    assert isinstance(DuplicateTask("x"), LedgerError)
    got = store.after(0)
    assert [(s.seq, s.task_id, s.version, s.report.client_id) for s in got] == [
        (1, "t-a", 0, 4),
        (2, "t-b", 1, 5),
    ]
    assert torch.equal(got[0].report.delta, d) and got[1].report.delta is None
    assert got[0].report.measured_energy_j == pytest.approx(0.5)
    assert got[0].report.loss != got[0].report.loss  # NaN survives the round trip
    # Every update applied and deleted: the next number is still 3, not 1 again (a reused
    # number would count as applied on resume).
    assert store.drop_upto(2) == 2 and store.count() == 0
    assert store.add("t-c", 2, 4.0, 5.0, report(4, d)) == 3
    start = store.run_start_unix()
    store.close()
    again = PendingStore(tmp_path, fresh=False)  # a resumed run's store: as it was
    assert [s.seq for s in again.after(0)] == [3] and again.run_start_unix() == start
    again.close()
    fresh = PendingStore(tmp_path, fresh=True)  # a new run in the folder starts empty
    assert fresh.count() == 0 and (tmp_path / FILE_NAME).exists()
    fresh.close()


def accepted_acks(err: str) -> int:
    """Updates a `greenfl join` saw accepted, from its last line."""
    m = re.search(r"done: (\d+) rounds \((\d+) not accepted", err)
    assert m is not None, err
    return int(m.group(1)) - int(m.group(2))


@pytest.mark.slow
def test_join_processes_of_different_speeds_stream_updates(
    tmp_path: Path,
    procs: Procs,  # noqa: F811
) -> None:
    """Three `greenfl join` processes (0 s, 0.3 s and 1.5 s extra per task), FedBuff with a
    buffer of 2: six server steps, each of 2 updates from 2 clients, the fast client in more
    of them than the slow one, the slow one's updates stale."""
    steps, k = 6, 2
    write_async_config(tmp_path / "c.toml", steps, k)
    port = free_port()
    addr = f"127.0.0.1:{port}"
    server = procs.start(
        "serve", "c.toml", "--address", addr, "--out", "run", "--min-clients", "3", "--quiet",
        cwd=tmp_path,
    )  # fmt: skip
    delays = {0: 0.0, 1: 0.3, 2: 1.5}
    clients = [
        procs.start(
            "join", "--server", addr, "--client-id", str(i), "--test-delay-s", str(d), cwd=tmp_path
        )  # fmt: skip
        for i, d in delays.items()
    ]
    code, _, err = finish(server, 120)
    assert code == 0, err
    acked = 0
    for c in clients:
        c_code, _, c_err = finish(c, 30)
        assert c_code == 0, c_err
        acked += accepted_acks(c_err)

    db = tmp_path / "run" / "ledger.sqlite"
    assert rows(db, "SELECT round, selected, completed FROM rounds ORDER BY round") == [
        (r, k, k) for r in range(1, steps + 1)
    ]
    got = rows(
        db,
        "SELECT round, client_id, status, model_version, staleness, start_s, energy_compute_j "
        "FROM client_rounds ORDER BY round, client_id",
    )
    assert len(got) == steps * k
    for r, _, status, version, staleness, start_s, energy_j in got:
        assert status in ("completed", "disputed")
        assert 0 <= version < r and staleness == r - 1 - version
        assert start_s >= 0 and energy_j > 0
    per_step = {r: [c for rr, c, *_ in got if rr == r] for r in range(1, steps + 1)}
    assert all(len(set(cs)) == k for cs in per_step.values())  # a client once per step
    pairs = [(c, v) for _, c, _, v, *_ in got]
    assert len(set(pairs)) == len(pairs)  # one update per client and model version
    count = {c: sum(c == cc for _, cc, *_ in got) for c in delays}
    assert count[0] > count[2] and count[0] >= steps - 1, count
    assert max(s for *_, s, _, _ in got) >= 1  # the slow client's updates were stale
    # Real time: each step ends after the last, and the ledger's clock is the run's.
    ends = [e for (e,) in rows(db, "SELECT end_s FROM rounds ORDER BY round")]
    assert ends == sorted(ends) and ends[0] > 0
    # Every update a client was told was accepted is in the ledger, or (accepted after the
    # last step) still in the store; the store holds nothing the ledger applied.
    store = tmp_path / "run" / FILE_NAME
    left = rows(store, "SELECT client_id, version FROM pending_updates")
    assert not set(left) & set(pairs)
    assert acked == len(got) + len(left)


def unapplied(store: Path, db: Path) -> set[tuple[int, int]]:
    """(client, model version) of the stored updates that no ledger row applied."""
    if not store.exists() or not db.exists():
        return set()
    try:
        stored = set(rows(store, "SELECT client_id, version FROM pending_updates"))
        applied = set(rows(db, f"SELECT client_id, model_version FROM client_rounds WHERE {AGG}"))
    except sqlite3.OperationalError:  # not written yet
        return set()
    return stored - applied


@pytest.mark.slow
def test_kill9_then_resume_loses_no_accepted_update_and_applies_none_twice(
    tmp_path: Path,
    procs: Procs,  # noqa: F811
) -> None:
    """A buffer of 3 from clients of 0, 0.2 and 1.5 s: the two fast ones' updates wait,
    stored, for the slow one's. The server is killed while they wait; the resumed server
    takes them again, once."""
    steps, k = 6, 3
    write_async_config(tmp_path / "c.toml", steps, k)
    port = free_port()
    serve = ("serve", "--address", f"127.0.0.1:{port}", "--out", "run", "--quiet")
    server = procs.start(*serve, "c.toml", "--min-clients", "3", cwd=tmp_path)
    clients = ThreadClients(f"127.0.0.1:{port}", [0, 1, 2], delay_s={1: 0.2, 2: 1.5})
    db, store = tmp_path / "run" / "ledger.sqlite", tmp_path / "run" / FILE_NAME
    seen: dict[int, tuple] = {}  # every stored update the test saw, by sequence number

    def ready() -> bool:
        if not store.exists():
            return False
        try:
            seen.update((r[0], r) for r in rows(store, "SELECT * FROM pending_updates"))
        except sqlite3.OperationalError:  # the store's file exists before its table does
            return False
        return max_round(db) >= 2 and len(unapplied(store, db)) >= 2

    wait_for(ready, 90, "step 2 in the ledger and two accepted updates waiting")
    server.send_signal(signal.SIGKILL)
    server.wait(timeout=10)
    time.sleep(1.0)  # the ledger's writer process commits what it was handed, then exits
    waiting = unapplied(store, db)
    done_before = max_round(db)
    assert len(waiting) >= 2 and 2 <= done_before < steps
    # The kill could also have come after a step was committed and before its updates left
    # the store: put the applied ones the test saw back, as such a kill leaves them.
    conn = sqlite3.connect(store)
    with conn:
        kept = {seq for (seq,) in conn.execute("SELECT seq FROM pending_updates")}
        back = [r for seq, r in seen.items() if seq not in kept]
        conn.executemany("INSERT INTO pending_updates VALUES (?, ?, ?, ?, ?, ?, ?, ?)", back)
    conn.close()
    assert len(back) >= 3  # step 1's at least

    resumed = procs.start(*serve, "--resume", "--min-clients", "3", cwd=tmp_path)
    code, _, err = finish(resumed, 120)
    assert code == 0, err
    clients.join(30)
    log = (tmp_path / "run" / "server.log").read_text()
    assert f"resume: {len(waiting)} accepted update(s) not yet applied" in log
    assert [r for (r,) in rows(db, "SELECT round FROM rounds ORDER BY round")] == list(
        range(1, steps + 1)
    )
    got = rows(db, f"SELECT round, client_id, model_version FROM client_rounds WHERE {AGG}")
    pairs = [(c, v) for _, c, v in got]
    assert len(pairs) == steps * k and len(set(pairs)) == len(pairs)  # none twice
    assert waiting <= set(pairs)  # none lost: each waiting update applied after the resume
    assert all(r > done_before for r, c, v in got if (c, v) in waiting)
    # What the clients were told was accepted is applied, or still stored after the last
    # step; at most one more per client (stored, then the kill cut its acknowledgement).
    acked = sum(c.stats.rounds - c.stats.rejected for c in clients.clients)
    left = rows(store, "SELECT client_id, version FROM pending_updates")
    assert not set(left) & set(pairs)
    assert acked <= len(pairs) + len(left) <= acked + 3
    assert rows(db, "SELECT status FROM runs") == [("completed",)]
