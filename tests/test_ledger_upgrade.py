"""A run written by an older greenfl (an older ledger schema) and resumed by this one: the
ledger is migrated (schema.migrate adds the newer columns), a chain link of kind ``columns``
records the column lists the later rounds are hashed over, and ``greenfl verify`` hashes
each round over the columns in effect at its link. The older rounds still verify over their
old columns, the resumed ones over the new ones, and an edit in either is still caught."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from greenfl.cli import main
from greenfl.config import build_config
from greenfl.core.errors import LedgerError
from greenfl.factories import build_loop
from greenfl.ledger import fingerprint, store
from greenfl.ledger.integrity import check_for_report, check_for_resume, verify_run
from greenfl.ledger.schema import CLIENT_ROUND_COLUMNS, ROUND_COLUMNS, SCHEMA_VERSION
from greenfl.ledger.writer import LedgerWriter

pytestmark = pytest.mark.skipif(
    sqlite3.sqlite_version_info < (3, 35, 0), reason="ALTER TABLE DROP COLUMN needs SQLite 3.35"
)

# The column lists of ledger schema version 6 (greenfl before client_rounds.precision,
# client_rounds.density and rounds.width_accuracy), spelled out as that greenfl had them.
V6_ROUND = (
    "round", "start_s", "end_s", "wait_s", "accuracy", "loss", "selected", "completed",
    "server_s", "server_energy_j", "server_idle_energy_j", "server_carbon_g",
    "server_ci_g_per_kwh", "server_estimated", "server_flops", "server_measured", "wall_s",
    "client_acc_mean", "client_acc_p10", "client_acc_worst_decile", "client_acc_clients",
    "backdoor_success", "epsilon", "dp_clip_norm", "checkin_s", "config_s", "report_window_s",
)  # fmt: skip
V6_CLIENT = (
    "round", "client_id", "device", "network", "region", "target", "status", "reason",
    "num_samples", "flops", "start_s", "compute_s", "bytes_up", "bytes_down", "comm_s",
    "energy_compute_j", "energy_comm_j", "ci_g_per_kwh", "carbon_operational_g",
    "carbon_embodied_g", "estimated", "wall_energy_j", "energy_network_j",
    "reported_energy_j", "server_estimate_j", "model_version", "staleness", "width",
)  # fmt: skip


@pytest.fixture(autouse=True)
def _fixed_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    # Other work commits to this checkout while tests run: the code fingerprint must not
    # move under a test. "c0ffee" is the older greenfl's commit, "beef" this one's.
    monkeypatch.setattr(fingerprint, "git_commit", lambda: "c0ffee")


def _db(run_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(run_dir / "ledger.sqlite")


def _sql(run_dir: Path, statement: str) -> None:
    conn = _db(run_dir)
    conn.execute(statement)
    conn.commit()
    conn.close()


def _query(run_dir: Path, statement: str) -> list[tuple]:
    conn = _db(run_dir)
    try:
        return conn.execute(statement).fetchall()
    finally:
        conn.close()


def _table(run_dir: Path, table: str) -> list[str]:
    return [row[1] for row in _query(run_dir, f"PRAGMA table_info({table})")]


def _kinds(run_dir: Path) -> list[str]:
    """The chain's links, as "start", "round 1", "columns", ..."""
    rows = _query(run_dir, "SELECT kind, round FROM chain ORDER BY seq")
    return [kind if rnd is None else f"{kind} {rnd}" for kind, rnd in rows]


def _body(run_dir: Path, kind: str) -> dict:
    (body,) = _query(run_dir, f"SELECT body FROM chain WHERE kind = '{kind}'")
    return json.loads(body[0])


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of 4 rounds interrupted after round 2, written by this greenfl."""
    base = tmp_path_factory.mktemp("upgrade")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fingerprint, "git_commit", lambda: "c0ffee")
        cfg = build_config(
            {
                "data": {"num_clients": 20},
                "train": {"rounds": 4, "clients_per_round": 5, "local_epochs": 1, "batch_size": 16},
                "report": {"html": False},
            }
        )
        loop = build_loop(cfg, base / "run")
        for _ in range(2):
            loop.run_round()
        loop.ledger.finish("interrupted", "interrupted")
        loop.ledger.close()
    return base / "run"


def _as_version_6(run_dir: Path) -> None:
    """Make the ledger what greenfl with schema version 6 wrote: the columns added since
    dropped, the start link listing the version-6 columns, each round link hashed over
    them, and the chain re-linked, as that greenfl's writer would have made it."""
    conn = _db(run_dir)
    for table, keep in (("rounds", V6_ROUND), ("client_rounds", V6_CLIENT)):
        have = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
        for name in have:
            if name not in keep:
                conn.execute(f"ALTER TABLE {table} DROP COLUMN {name}")
    conn.execute("UPDATE meta SET value = '6' WHERE key = 'schema_version'")
    conn.execute("DELETE FROM chain WHERE kind = 'end'")  # version 6 recorded no endings
    links = conn.execute(
        "SELECT seq, kind, round, model_sha256, state_sha256, body FROM chain ORDER BY seq"
    ).fetchall()
    prev = None
    for seq, kind, rnd, model_sha, state_sha, body in links:
        if kind == "start":
            start = json.loads(body)
            start["round_columns"], start["client_columns"] = list(V6_ROUND), list(V6_CLIENT)
            del start["end_links"]
            body = json.dumps(start, sort_keys=True, separators=(",", ":"))
            prev = store.link_digest(prev, "start", body)
            conn.execute("UPDATE chain SET body = ?, digest = ? WHERE seq = ?", (body, prev, seq))
            conn.execute("UPDATE meta SET value = ? WHERE key = 'fingerprint'", (body,))
            continue
        assert kind == "round"
        row = conn.execute(f"SELECT {', '.join(V6_ROUND)} FROM rounds WHERE round = ?", (rnd,))
        clients = conn.execute(
            f"SELECT {', '.join(V6_CLIENT)} FROM client_rounds WHERE round = ? ORDER BY client_id",
            (rnd,),
        ).fetchall()
        rounds_sha = store.sha256_hex(store.canonical([row.fetchone()]))
        clients_sha = store.sha256_hex(store.canonical(clients))
        prev = store.link_digest(prev, "round", rnd, rounds_sha, clients_sha, model_sha, state_sha)
        conn.execute(
            "UPDATE chain SET rounds_sha256 = ?, clients_sha256 = ?, digest = ? WHERE seq = ?",
            (rounds_sha, clients_sha, prev, seq),
        )
    conn.commit()
    conn.close()


@pytest.fixture
def old_run(written: Path, tmp_path: Path) -> Path:
    """A copy of the run, as greenfl with schema version 6 wrote it."""
    shutil.copytree(written, tmp_path / "run")
    _as_version_6(tmp_path / "run")
    return tmp_path / "run"


@pytest.fixture(scope="module")
def upgraded(written: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The version-6 run resumed to its end by this greenfl (another commit: the code
    change accepted with --accept-changes)."""
    run = tmp_path_factory.mktemp("upgraded") / "run"
    shutil.copytree(written, run)
    _as_version_6(run)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fingerprint, "git_commit", lambda: "beef")
        assert main(["run", "--out", str(run), "--resume", "-q", "--accept-changes"]) == 0
    return run


@pytest.fixture
def upgraded_copy(upgraded: Path, tmp_path: Path) -> Path:
    shutil.copytree(upgraded, tmp_path / "run")
    return tmp_path / "run"


def test_the_version_6_ledger_is_one_that_verifies(old_run: Path) -> None:
    """The rewritten ledger is an honest version-6 one: its columns, and a chain that
    verifies over them."""
    assert _table(old_run, "rounds") == list(V6_ROUND)
    assert _table(old_run, "client_rounds") == list(V6_CLIENT)
    assert _kinds(old_run) == ["start", "round 1", "round 2"]
    assert len(verify_run(old_run)) == 64


def test_the_resumed_run_verifies_with_a_columns_link_at_the_upgrade(
    upgraded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", str(upgraded)]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.strip() == verify_run(upgraded)
    # migrated, and the rounds written since have values in the new columns
    assert set(_table(upgraded, "client_rounds")) == set(CLIENT_ROUND_COLUMNS)
    precision = _query(upgraded, "SELECT round, precision FROM client_rounds ORDER BY round")
    assert {(r, p) for r, p in precision} == {(1, None), (2, None), (3, "fp32"), (4, "fp32")}
    # the start keeps the old columns; the columns link, after the accepted change and
    # before the first round this greenfl wrote, lists the new ones
    assert _kinds(upgraded) == [
        "start", "round 1", "round 2", "change", "columns", "round 3", "round 4", "end"
    ]  # fmt: skip
    assert _body(upgraded, "start")["client_columns"] == list(V6_CLIENT)
    columns = _body(upgraded, "columns")
    assert columns["round_columns"] == list(ROUND_COLUMNS)
    assert columns["client_columns"] == list(CLIENT_ROUND_COLUMNS)
    assert columns["schema_version"] == SCHEMA_VERSION
    # a resume (this code: "beef" was accepted) and a report check it the same way
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fingerprint, "git_commit", lambda: "beef")
        assert check_for_resume(upgraded) == []
    assert check_for_report(upgraded) == []


def test_the_upgrade_is_recorded_without_a_code_change_too(
    old_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same code fingerprint (greenfl installed without git, its version unchanged):
    no --accept-changes, and still the columns link before round 3."""
    assert main(["run", "--out", str(old_run), "--resume", "-q"]) == 0, capsys.readouterr().err
    assert _kinds(old_run) == [
        "start", "round 1", "round 2", "columns", "round 3", "round 4", "end"
    ]  # fmt: skip
    assert main(["verify", str(old_run)]) == 0, capsys.readouterr().err


def test_opening_a_ledger_again_adds_no_second_columns_link(
    upgraded_copy: Path, written: Path, tmp_path: Path
) -> None:
    before = _kinds(upgraded_copy)
    LedgerWriter(upgraded_copy / "ledger.sqlite", background=False).close()
    assert _kinds(upgraded_copy) == before
    shutil.copytree(written, tmp_path / "current")  # a ledger of this greenfl's columns
    LedgerWriter(tmp_path / "current" / "ledger.sqlite", background=False).close()
    assert _kinds(tmp_path / "current") == ["start", "round 1", "round 2", "end"]


# (edit, the one line verify names): in the rounds before the upgrade and after it, in the
# columns both hash and in those only the later rounds hash
EDITS: dict[str, tuple[str, str]] = {
    "old round, old column": (
        "UPDATE rounds SET accuracy = 0.99 WHERE round = 1",
        "ledger round 1 was edited after it was written (rounds)",
    ),
    "old round, old client column": (
        "UPDATE client_rounds SET energy_compute_j = 1e30 WHERE round = 2",
        "ledger round 2 was edited after it was written (client_rounds)",
    ),
    # a column added after round 2 was written: a value put there is an edit of round 2
    "old round, new column": (
        "UPDATE client_rounds SET precision = 'fp16' WHERE round = 2",
        "ledger round 2 was edited after it was written (client_rounds)",
    ),
    "new round, old column": (
        "UPDATE client_rounds SET energy_compute_j = 1e30 WHERE round = 3",
        "ledger round 3 was edited after it was written (client_rounds)",
    ),
    "new round, new column": (
        "UPDATE client_rounds SET density = 0.5 WHERE round = 4",
        "ledger round 4 was edited after it was written (client_rounds)",
    ),
    "new round, new rounds column": (
        "UPDATE rounds SET width_accuracy = '{\"0.5\": 0.9}' WHERE round = 3",
        "ledger round 3 was edited after it was written (rounds)",
    ),
    # the new columns taken out of the link: later rounds would be hashed without them
    "columns link edited": (
        "UPDATE chain SET body = replace(body, ',\"density\"', '') WHERE kind = 'columns'",
        "the ledger's hash chain was edited at its columns link (chain)",
    ),
    "columns link deleted": (
        "DELETE FROM chain WHERE kind = 'columns'",
        "ledger round 3 was edited after it was written (rounds)",
    ),
}


@pytest.mark.parametrize("kind", list(EDITS))
def test_an_edit_on_either_side_of_the_upgrade_is_caught(
    upgraded_copy: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    statement, line = EDITS[kind]
    _sql(upgraded_copy, statement)
    assert main(["verify", str(upgraded_copy)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {line}"]


def test_an_accepted_value_in_a_newer_column_of_an_old_round_is_recorded(
    upgraded_copy: Path,
) -> None:
    _sql(upgraded_copy, "UPDATE client_rounds SET precision = 'fp16' WHERE round = 1")
    assert check_for_report(upgraded_copy, accept=True) == [
        "ledger round 1 was edited after it was written (client_rounds)"
    ]
    verify_run(upgraded_copy)  # round 1's link now covers the value
    _sql(upgraded_copy, "UPDATE client_rounds SET precision = 'bf16' WHERE round = 1")
    with pytest.raises(LedgerError, match="round 1 was edited"):
        verify_run(upgraded_copy)


def test_a_ledger_from_before_the_chain_starts_one_over_the_columns_it_has(
    old_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No chain table at all (greenfl before the chain): --accept-changes starts the chain
    over the columns the tables have, and the writer's migration is a columns link."""
    _sql(old_run, "DROP TABLE chain")
    _sql(old_run, "DELETE FROM meta WHERE key = 'fingerprint'")
    args = ["run", "--out", str(old_run), "--resume", "-q", "--accept-changes"]
    assert main(args) == 0, capsys.readouterr().err
    assert "accepted and recorded in the ledger: the ledger has no hash chain" in (
        capsys.readouterr().err
    )
    # the chain started over the ledger as it was, interrupted: an end link says so
    assert _kinds(old_run) == [
        "start", "round 1", "round 2", "change", "end", "columns", "round 3", "round 4", "end"
    ]  # fmt: skip
    assert _body(old_run, "start")["round_columns"] == list(V6_ROUND)
    assert main(["verify", str(old_run)]) == 0, capsys.readouterr().err
    _sql(old_run, "UPDATE rounds SET loss = 7.0 WHERE round = 2")
    assert main(["verify", str(old_run)]) == 2
    line = "error: ledger round 2 was edited after it was written (rounds)"
    assert capsys.readouterr().err.strip() == line


@pytest.mark.parametrize(
    ("columns", "row", "expected"),
    [
        (["round", "a", "b", "c"], (1, 2, 3, 4), (1, 2, 3, 4)),  # the table's own columns
        (["round", "a", "b"], (1, 2, 3, None), (1, 2, 3)),  # c added later, NULL
        (["round", "a", "b"], (1, 2, 3, 9), (1, 2, 3, "c", 9)),  # ... and given a value
        (["round", "c"], (1, 7, None, 4), (1, 4, "a", 7)),  # only the columns holding one
        (["round", "a", "x"], (1, 2, 5, None), (1, 2, None, "b", 5)),  # x dropped: NULL
    ],
)
def test_a_row_as_the_columns_its_link_hashes(
    columns: list[str], row: tuple, expected: tuple
) -> None:
    from greenfl.ledger.columns import projection

    assert projection(["round", "a", "b", "c"], columns)(row) == expected
