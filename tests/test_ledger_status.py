"""The run's ending in the ledger's hash chain (greenfl.ledger.ending): the writer records
each ending (completed, interrupted, failed) as a link of kind ``end``, and ``greenfl
verify``, ``greenfl report`` and ``--resume`` hold ``runs.status`` against it. A status
edited after the run ended is named in one line (exit 2); a ledger still ``running`` is a
run in progress or killed, not an edit; a chain written before end links still verifies."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from greenfl.cli import main
from greenfl.config import build_config
from greenfl.core.errors import LedgerError
from greenfl.factories import build_loop
from greenfl.ledger import ending, fingerprint, store
from greenfl.ledger.integrity import check_for_report, check_for_resume, verify_note, verify_run
from greenfl.ledger.writer import LedgerWriter

CONFIG = {
    "seed": 0,
    "data": {"num_clients": 20},
    "train": {"rounds": 3, "clients_per_round": 5, "local_epochs": 1, "batch_size": 16},
    "report": {"html": False},
}
# the same run, as `greenfl run` reads it
RUN_TOML = """\
seed = 0
[data]
num_clients = 20
[train]
rounds = 3
clients_per_round = 5
local_epochs = 1
batch_size = 16
[report]
html = false
"""


@pytest.fixture(autouse=True)
def _fixed_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    # Other work commits to this checkout while tests run: the code fingerprint must not
    # move under a test (a resume compares it).
    monkeypatch.setattr(fingerprint, "git_commit", lambda: "c0ffee")


def _loop_run(folder: Path, rounds: int, status: str | None, reason: str | None) -> Path:
    """A run of 3 rounds stopped after ``rounds``, its ledger marked ``status`` (None: left
    ``running``, as a kill -9 leaves it)."""
    cfg = build_config(CONFIG)
    loop = build_loop(cfg, folder)
    for _ in range(rounds):
        loop.run_round()
    if status is not None:
        loop.ledger.finish(status, reason)
    loop.ledger.close()
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One folder per ending: completed (by ``greenfl run``), interrupted and failed after
    round 2, and running (stopped after round 2 without an ending: kill -9)."""
    base = tmp_path_factory.mktemp("status")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fingerprint, "git_commit", lambda: "c0ffee")
        (base / "run.toml").write_text(RUN_TOML)
        assert main(["run", str(base / "run.toml"), "--out", str(base / "completed"), "-q"]) == 0
        _loop_run(base / "interrupted", 2, "interrupted", "interrupted")
        _loop_run(base / "failed", 2, "failed", "DiskFull: the disk holding x is full")
        _loop_run(base / "running", 2, None, None)
    yield base


Copy = Callable[[str], Path]


@pytest.fixture
def copy(runs: Path, tmp_path: Path) -> Copy:
    """A copy of one of the module's run folders, for a test to edit."""

    def make(name: str) -> Path:
        shutil.copytree(runs / name, tmp_path / name)
        return tmp_path / name

    return make


def _query(run: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(run / "ledger.sqlite")
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _sql(run: Path, sql: str, *args: object) -> None:
    conn = sqlite3.connect(run / "ledger.sqlite")
    conn.execute(sql, args)
    conn.commit()
    conn.close()


def _kinds(run: Path) -> list[str]:
    rows = _query(run, "SELECT kind, round FROM chain ORDER BY seq")
    return [kind if rnd is None else f"{kind} {rnd}" for kind, rnd in rows]


def _ends(run: Path) -> list[dict]:
    return [json.loads(b) for (b,) in _query(run, "SELECT body FROM chain WHERE kind = 'end'")]


def _one_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# ---- what the writer records -------------------------------------------------------------
def test_a_completed_run_ends_its_chain_and_verifies(
    runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = runs / "completed"
    assert _kinds(run) == ["start", "round 1", "round 2", "round 3", "end"]
    (end,) = _ends(run)
    ((status, reason),) = _query(run, "SELECT status, stop_reason FROM runs")
    assert status == "completed" and end["status"] == "completed"
    assert end["stop_reason"] == reason and end["last_round"] == 3 and "when_utc" in end
    # the end link is the chain's head: the run's digest covers how it ended
    assert main(["verify", str(run)]) == 0
    out = capsys.readouterr().out.strip()
    assert out == verify_run(run) == _query(run, "SELECT digest FROM chain ORDER BY seq")[-1][0]
    assert verify_note(run) is None
    assert main(["report", str(run)]) == 0


@pytest.mark.parametrize(
    ("name", "reason"),
    [("interrupted", "interrupted"), ("failed", "DiskFull: the disk holding x is full")],
)
def test_an_interrupted_or_failed_run_records_its_ending(
    runs: Path, name: str, reason: str
) -> None:
    run = runs / name
    assert _kinds(run) == ["start", "round 1", "round 2", "end"]
    (end,) = _ends(run)
    assert (end["status"], end["stop_reason"], end["last_round"]) == (name, reason, 2)
    assert len(verify_run(run)) == 64


# ---- a status edited after the run ended --------------------------------------------------
# (run, status written over it, the line every check names)
EDITS = {
    "completed -> interrupted": (
        "completed",
        "interrupted",
        "the run's status was edited after it was written: the chain says completed, "
        "the ledger interrupted",
    ),
    "interrupted -> completed": (
        "interrupted",
        "completed",
        "the run's status was edited after it was written: the chain says interrupted, "
        "the ledger completed",
    ),
    "failed -> completed": (
        "failed",
        "completed",
        "the run's status was edited after it was written: the chain says failed, "
        "the ledger completed",
    ),
    # a kill -9 leaves it running: a run that never ended made to look finished
    "running -> completed": (
        "running",
        "completed",
        "the run's status was edited after it was written: the chain says running, "
        "the ledger completed",
    ),
}


@pytest.mark.parametrize("kind", list(EDITS))
def test_an_edited_status_is_named_by_verify_report_and_resume(
    copy: Copy, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name, status, line = EDITS[kind]
    run = copy(name)
    digest = verify_run(run)
    _sql(run, "UPDATE runs SET status = ?", status)
    with pytest.raises(LedgerError) as caught:
        verify_run(run)
    assert str(caught.value) == line
    assert main(["verify", str(run)]) == 2
    assert _one_error(capsys) == f"error: {line}"
    assert main(["report", str(run)]) == 2
    assert _one_error(capsys) == f"error: {line}"
    assert main(["run", "--out", str(run), "--resume", "-q"]) == 2
    assert _one_error(capsys) == f"error: {line}"
    assert _query(run, "SELECT status FROM runs") == [(status,)]  # refused, untouched
    # the edit put back: the same digest as before
    _sql(run, "UPDATE runs SET status = ?", name)
    assert verify_run(run) == digest


def test_an_edited_stop_reason_is_named(copy: Copy) -> None:
    run = copy("failed")
    _sql(run, "UPDATE runs SET stop_reason = 'target accuracy reached'")
    line = (
        "the run's stop reason was edited after it was written: the chain says "
        '"DiskFull: the disk holding x is full", the ledger "target accuracy reached"'
    )
    with pytest.raises(LedgerError) as caught:
        check_for_report(run)
    assert str(caught.value) == line


def test_deleting_the_end_link_does_not_make_an_old_chain(copy: Copy) -> None:
    """The end link is the chain's last, so deleting it breaks no digest; the start link
    says the chain records endings, so the ended status without one is still named."""
    run = copy("interrupted")
    _sql(run, "DELETE FROM chain WHERE kind = 'end'")
    _sql(run, "UPDATE runs SET status = 'completed', stop_reason = 'max_rounds'")
    with pytest.raises(LedgerError, match="the chain says running, the ledger completed"):
        verify_run(run)


def test_an_accepted_status_edit_is_recorded_and_then_checked(copy: Copy) -> None:
    run = copy("interrupted")
    _sql(run, "UPDATE runs SET status = 'completed'")
    assert check_for_report(run, accept=True) == [EDITS["interrupted -> completed"][2]]
    # the change link names it, and a new end link says how the ledger now ends
    assert _kinds(run)[-3:] == ["end", "change", "end"]
    assert _ends(run)[-1]["status"] == "completed"
    verify_run(run)
    _sql(run, "UPDATE runs SET status = 'interrupted'")
    with pytest.raises(LedgerError, match="the chain says completed, the ledger interrupted"):
        verify_run(run)


# ---- a run that has not ended --------------------------------------------------------------
def test_a_running_ledger_verifies_and_says_it_has_not_ended(
    runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = runs / "running"
    assert _kinds(run) == ["start", "round 1", "round 2"]
    assert main(["verify", str(run)]) == 0
    printed = capsys.readouterr()
    assert len(printed.out.strip()) == 64  # the digest alone on stdout
    note = verify_note(run)
    assert note is not None and note.startswith("the run has not ended")
    assert printed.err.strip() == f"note: {note}"  # the note on stderr, one line
    assert "kill -9" in note and "rounds 1-2" in note


def test_a_resumed_run_is_running_until_it_ends_again(copy: Copy) -> None:
    """A resume marks the ledger running before its first round: the chain still ends with
    the end link then, and that is not an edit. The run's second ending is recorded too."""
    run = copy("interrupted")
    _sql(run, "UPDATE runs SET status = 'running', stop_reason = NULL")  # as resume does
    verify_run(run)
    note = verify_note(run)
    assert note is not None and note.startswith("the run was resumed after it ended interrupted")
    assert main(["run", "--out", str(run), "--resume", "-q"]) == 0
    assert _kinds(run) == ["start", "round 1", "round 2", "end", "round 3", "end"]
    assert [e["status"] for e in _ends(run)] == ["interrupted", "completed"]
    assert _ends(run)[-1]["last_round"] == 3
    verify_run(run)
    check_for_resume(run)
    # the first ending, with a round after it, is history: the run is judged by the last
    _sql(run, "UPDATE runs SET status = 'interrupted'")
    with pytest.raises(LedgerError, match="the chain says completed, the ledger interrupted"):
        verify_run(run)


# ---- a chain from before end links ---------------------------------------------------------
def _as_before_end_links(run: Path) -> None:
    """The ledger as a greenfl before end links wrote it: no end link, a start link
    without ``end_links``, and the chain re-linked over that."""
    conn = sqlite3.connect(run / "ledger.sqlite")
    conn.execute("DELETE FROM chain WHERE kind = 'end'")
    ((seq, body),) = conn.execute("SELECT seq, body FROM chain WHERE kind = 'start'").fetchall()
    start = json.loads(body)
    del start[ending.ENDS_KEY]
    body = json.dumps(start, sort_keys=True, separators=(",", ":"))
    conn.execute("UPDATE chain SET body = ? WHERE seq = ?", (body, seq))
    conn.execute("UPDATE meta SET value = ? WHERE key = 'fingerprint'", (body,))
    links = conn.execute(
        "SELECT seq, kind, round, rounds_sha256, clients_sha256, model_sha256, state_sha256, "
        "body FROM chain ORDER BY seq"
    ).fetchall()
    prev = None
    for seq, kind, rnd, *shas, link_body in links:
        if kind == "round":
            prev = store.link_digest(prev, "round", rnd, *shas)
        else:
            prev = store.link_digest(prev, kind, link_body)
        conn.execute("UPDATE chain SET digest = ? WHERE seq = ?", (prev, seq))
    conn.commit()
    conn.close()


def test_an_old_chain_without_end_links_verifies(
    copy: Copy, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy("interrupted")
    _as_before_end_links(run)
    assert _kinds(run) == ["start", "round 1", "round 2"]
    assert main(["verify", str(run)]) == 0, capsys.readouterr().err
    check_for_report(run)
    # its status is taken as written (no end link to hold it against) ...
    _sql(run, "UPDATE runs SET status = 'completed'")
    verify_run(run)
    _sql(run, "UPDATE runs SET status = 'interrupted'")
    # ... until this greenfl ends the run: from then on it is checked
    assert main(["run", "--out", str(run), "--resume", "-q"]) == 0
    assert _kinds(run) == ["start", "round 1", "round 2", "round 3", "end"]
    verify_run(run)
    _sql(run, "UPDATE runs SET status = 'failed'")
    with pytest.raises(LedgerError, match="the chain says completed, the ledger failed"):
        verify_run(run)


# ---- a full disk ---------------------------------------------------------------------------
def test_a_full_disk_ending_writes_its_end_link_from_the_reserve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first try of the ending fails on a full disk after the status was updated: the
    transaction takes both back (never a status without its end link); the writer gives
    up its reserve and writes both."""
    run = _loop_run(tmp_path / "run", 1, None, None)
    writer = LedgerWriter(run / "ledger.sqlite", background=False)
    real, tries = ending.append_end, []

    def full_once(conn: sqlite3.Connection, status: str, reason: str | None) -> None:
        tries.append(conn.execute("SELECT status FROM runs").fetchone()[0])
        if len(tries) == 1:
            raise sqlite3.OperationalError("database or disk is full")
        real(conn, status, reason)

    free, between = writer._free_reserve, []

    def free_reserve() -> bool:
        # what the ledger holds after the failed try, before the second
        between.append((_query(run, "SELECT status FROM runs"), _kinds(run)))
        return free()

    monkeypatch.setattr(ending, "append_end", full_once)
    monkeypatch.setattr(writer, "_free_reserve", free_reserve)
    reserve = run / "ledger.sqlite-reserve"
    assert reserve.is_file()
    writer.finish("failed", "DiskFull: the disk is full")
    writer.close()
    assert tries == ["failed", "failed"]  # the status updated in each try, before the link
    # close() frees the reserve too (nothing left by then): the first call is finish()'s
    assert between[0] == ([("running",)], ["start", "round 1"])  # the first try taken back
    assert not reserve.exists()  # given up for the second try
    assert _query(run, "SELECT status FROM runs") == [("failed",)]
    assert _kinds(run) == ["start", "round 1", "end"]
    verify_run(run)
