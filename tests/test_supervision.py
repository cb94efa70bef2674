"""Supervision (issue 29): SIGTERM to the run's whole process group (systemd's stop,
``timeout``) leaves the ledger ``interrupted`` with exactly the rounds the printed line
names; a full disk leaves it ``failed`` with a one-line reason."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import greenfl
from greenfl.cli import main
from greenfl.config import build_config
from greenfl.core.errors import LedgerError
from greenfl.ledger import child, store, writer_proc
from greenfl.ledger.integrity import verify_run
from greenfl.ledger.rows import pack_rounds
from greenfl.ledger.schema import CLIENT_ROUND_COLUMNS, ROUND_COLUMNS
from greenfl.ledger.writer import DiskFull, LedgerWriter

LONG_RUN = """\
seed = 0
[data]
num_clients = 20
[train]
rounds = 400
clients_per_round = 5
local_epochs = 1
batch_size = 16
[stop]
target_accuracy = 1.0
[report]
html = false
"""


def _rounds(ledger: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
        try:
            return conn.execute("SELECT COUNT(*) FROM rounds").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def test_sigterm_to_the_process_group_leaves_the_ledger_interrupted(tmp_path: Path) -> None:
    (tmp_path / "run.toml").write_text(LONG_RUN)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "greenfl", "run", str(tmp_path / "run.toml"), "--out", str(out)],
        start_new_session=True,  # its own process group, which the test then signals whole
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while _rounds(out / "ledger.sqlite") < 3 and proc.poll() is None:
            assert time.monotonic() < deadline, "the run wrote no 3 rounds in 120 s"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGTERM)  # the loop's process and its ledger writer alike
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    said = re.match(r"interrupted: rounds 1-(\d+) kept in ", last)
    assert said, last
    conn = sqlite3.connect(out / "ledger.sqlite")
    count, top = conn.execute("SELECT COUNT(*), MAX(round) FROM rounds").fetchone()
    status, reason = conn.execute("SELECT status, stop_reason FROM runs").fetchone()
    conn.close()
    assert (status, reason) == ("interrupted", "interrupted")
    assert count == top == int(said.group(1))
    # the progress printed ahead of the interrupt: every round shown is in the ledger
    shown = [int(m) for m in re.findall(r"round (\d+)/400", err)]
    assert shown and max(shown) <= count
    verify_run(out)  # the rounds kept are whole: each with its chain link


def _full_after(rounds: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes inline, and the database cannot grow (PRAGMA max_page_count at its size) while
    the rounds after ``rounds`` are written: SQLite's own SQLITE_FULL, as on a full disk,
    once a round no longer fits the pages there are (a round or two later). The limit is
    lifted after each write, standing for the space the writer's reserve file gives back."""
    monkeypatch.setattr(child.WriterProcess, "supported", staticmethod(lambda: False))
    real = store.write_rounds

    def write(conn: sqlite3.Connection, sql: store.RoundSQL, round_rows, *rest) -> None:  # type: ignore[no-untyped-def]
        if round_rows[0][0] <= rounds:
            return real(conn, sql, round_rows, *rest)
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
        conn.execute(f"PRAGMA max_page_count = {pages}")
        try:
            return real(conn, sql, round_rows, *rest)
        finally:
            conn.execute("PRAGMA max_page_count = 1073741823")

    monkeypatch.setattr(store, "write_rounds", write)


def test_a_full_disk_leaves_the_ledger_failed_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _full_after(3, monkeypatch)
    (tmp_path / "run.toml").write_text(LONG_RUN.replace("rounds = 400", "rounds = 40"))
    out = tmp_path / "out"
    assert main(["run", str(tmp_path / "run.toml"), "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    said = re.match(
        r"error: the ledger could not write round (\d+): the disk holding .* is full", err[0]
    )
    assert said, err[0]
    conn = sqlite3.connect(out / "ledger.sqlite")
    status, reason = conn.execute("SELECT status, stop_reason FROM runs").fetchone()
    count = conn.execute("SELECT COUNT(*) FROM rounds").fetchone()[0]
    conn.close()
    assert status == "failed" and "is full" in reason
    assert count == int(said.group(1)) - 1 >= 3  # the rounds before the full disk, whole
    verify_run(out)


def test_the_writer_process_names_a_full_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer process's loop (writer_proc.serve, run here in a thread) on a database that is
    full: it reports the rounds it could not write, naming the full disk, and keeps the
    ones before."""
    path = tmp_path / "ledger.sqlite"
    LedgerWriter(path, background=False).close()  # the tables
    real = store.connect

    def small(p: str) -> sqlite3.Connection:
        conn = real(p)
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
        conn.execute(f"PRAGMA max_page_count = {pages + 1}")
        return conn

    monkeypatch.setattr(store, "connect", small)
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    with (
        open(to_child_r, "rb") as inp,
        open(from_child_w, "wb", buffering=0) as out,
        open(to_child_w, "wb", buffering=0) as send,
        open(from_child_r, "rb") as recv,
    ):
        worker = threading.Thread(target=writer_proc.serve, args=(inp, out))
        worker.start()
        store.send(send, ("init", str(path), (ROUND_COLUMNS, CLIENT_ROUND_COLUMNS), 5.0))
        assert store.recv(recv)[0] == "ready"  # type: ignore[index]
        for rnd in range(1, 40):
            row = [rnd, 0.0, 1.0] + [0.0] * (len(ROUND_COLUMNS) - 3)
            rows = [_client_row(rnd, i) for i in range(20)]
            store.send(send, ("rounds", [row], pack_rounds([rows], CLIENT_ROUND_COLUMNS), {}))
        store.send(send, ("flush", 1))
        msgs = []
        while True:
            msg = store.recv(recv)
            msgs.append(msg)
            if msg is None or msg[0] == "flushed":
                break
        store.send(send, ("stop",))
        worker.join(timeout=30)
    errors = [m[1] for m in msgs if m is not None and m[0] == "error"]
    assert len(errors) == 1, msgs
    assert re.match(r"the ledger could not write round \d+: the disk holding .* is full", errors[0])
    written = int(re.search(r"round (\d+)", errors[0]).group(1))  # type: ignore[union-attr]
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT MAX(round) FROM rounds").fetchone()[0] == written - 1
    conn.close()


def _client_row(rnd: int, client_id: int) -> dict[str, object]:
    row: dict[str, object] = {c: 1 for c in CLIENT_ROUND_COLUMNS}
    text = {"device": "x" * 50, "network": "wifi", "region": "DE", "target": "default"}
    return row | text | {"round": rnd, "client_id": client_id, "status": "completed"}


def test_finish_gives_up_the_reserve_on_a_full_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ledger.sqlite"
    writer = LedgerWriter(path, background=False)
    reserve = tmp_path / "ledger.sqlite-reserve"
    assert reserve.stat().st_size == 1 << 20
    writer.begin_run({"seed": 0}, {"path": "builtin"}, "0")
    real = writer._set_status
    calls: list[str] = []

    def full_once(status: str, reason: str | None) -> None:
        calls.append(status)
        if len(calls) == 1:
            raise DiskFull("the disk holding it is full")
        real(status, reason)

    monkeypatch.setattr(writer, "_set_status", full_once)
    writer.finish("failed", "disk full")
    assert calls == ["failed", "failed"] and not reserve.exists()
    writer.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT status FROM runs").fetchone()[0] == "failed"
    conn.close()


def test_a_run_without_its_reserve_still_fails_in_one_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """greenfl.run raises the ledger's error (a LedgerError), not sqlite3's."""
    _full_after(2, monkeypatch)
    cfg = build_config(
        {"data": {"num_clients": 20}, "train": {"rounds": 10, "clients_per_round": 5}}
    )
    with pytest.raises(LedgerError, match=r"could not write round ([3-9]|10): the disk holding"):
        greenfl.run(cfg, tmp_path / "out")


def test_a_second_command_in_one_process_replaces_the_log_handlers(tmp_path: Path) -> None:
    import logging

    from greenfl.cli.logs import reset_logging, setup_logging

    root = logging.getLogger("greenfl")
    before = list(root.handlers)
    setup_logging(False, tmp_path / "a.log")
    setup_logging(True, tmp_path / "b.log")
    added = [h for h in root.handlers if h not in before]
    # one stderr handler (the second call's, warnings only) and one file: b.log's
    assert len(added) == 2
    files = [h for h in added if isinstance(h, logging.FileHandler)]
    assert [Path(h.baseFilename).name for h in files] == ["b.log"]
    streams = [h for h in added if not isinstance(h, logging.FileHandler)]
    assert streams[0].level == logging.WARNING
    reset_logging()
    assert root.handlers == before
