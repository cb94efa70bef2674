"""The ledger's writer process: rounds handed over in batches with the state after the last,
errors that name the rounds and keep what was committed, one writer per ledger file, and a
killed loop process that loses only what it had not handed over."""

from __future__ import annotations

import ast
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import greenfl
from greenfl.config import RunConfig
from greenfl.core.errors import LedgerError
from greenfl.factories import build_loop
from greenfl.ledger import store
from greenfl.ledger.schema import SCHEMA_VERSION
from greenfl.ledger.writer import LedgerWriter
from tests.test_ledger_writer import _client_rows, _round_row


def _committed(path: Path) -> tuple[list[int], tuple[int, bytes] | None]:
    """What another reader of the file sees: the rounds, and the saved state's round."""
    conn = sqlite3.connect(path)
    try:
        rounds = [r for (r,) in conn.execute("SELECT round FROM rounds ORDER BY round")]
        state = conn.execute("SELECT round, value FROM server_state").fetchone()
    finally:
        conn.close()
    return rounds, state


def test_rounds_are_handed_over_in_batches_with_the_state_of_the_last(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    w = LedgerWriter(path, batch_s=3600.0)
    assert w.background
    asked: list[int] = []

    def state(r: int):  # noqa: ANN202
        def snapshot() -> dict[str, bytes]:
            asked.append(r)
            return {"loop": bytes([r])}

        return snapshot

    for r in (1, 2, 3):
        w.write_round(_round_row(r), _client_rows(r), state(r))
    # The first round goes at once; the next two wait for the batch (an hour here).
    assert asked == [1]
    w.flush()
    assert asked == [1, 3]  # only the state after the last queued round is ever taken
    rounds, saved = _committed(path)
    assert rounds == [1, 2, 3] and saved == (3, bytes([3]))
    assert w.conn.execute("SELECT COUNT(*) FROM client_rounds").fetchone() == (6,)
    w.close()


def test_a_state_that_has_moved_on_is_not_written(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    w = LedgerWriter(path, batch_s=3600.0)
    w.write_round(_round_row(1), _client_rows(1), {"loop": b"one"})
    w.write_round(_round_row(2), _client_rows(2), lambda: None)  # the loop went on
    w.close()
    rounds, saved = _committed(path)
    assert rounds == [1, 2] and saved == (1, b"one")


def test_a_failed_write_names_the_round_and_keeps_what_was_committed(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    w = LedgerWriter(path)
    w.write_round(_round_row(1), _client_rows(1), {"loop": b"one"})
    w.write_round(_round_row(1), _client_rows(1))  # round 1 again: the writer refuses it
    with pytest.raises(LedgerError, match=r"could not write round 1: UNIQUE constraint"):
        w.flush()
    with pytest.raises(LedgerError, match="round 1"):  # no round after a missing one
        w.write_round(_round_row(2), _client_rows(2))
    # Reported once: the ledger still reads, and the run can still be marked failed.
    assert w.meta()["schema_version"] == str(SCHEMA_VERSION)
    w.finish("failed", "ledger")
    w.close()
    rounds, saved = _committed(path)
    assert rounds == [1] and saved == (1, b"one")


def test_a_killed_writer_process_is_an_error_that_says_so(tmp_path: Path) -> None:
    w = LedgerWriter(tmp_path / "ledger.sqlite")
    w.write_round(_round_row(1), _client_rows(1))
    w.flush()
    assert w._child is not None
    os.kill(w._child.proc.pid, signal.SIGKILL)
    w._child.proc.wait()
    with pytest.raises(LedgerError, match=r"writer process .* exited with code -9"):
        w.write_round(_round_row(2), _client_rows(2))
        w.flush()
    assert _committed(tmp_path / "ledger.sqlite")[0] == [1]
    w.close()


def test_one_writer_per_ledger_file(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    first = LedgerWriter(path)
    with pytest.raises(LedgerError, match="still being written by another ledger writer"):
        LedgerWriter(path, lock_wait_s=0.2)
    first.close()
    second = LedgerWriter(path, lock_wait_s=0.2)  # free once the first has finished
    second.close()


def test_the_writer_process_imports_only_the_standard_library() -> None:
    # It is started as a script (python -I store.py): no greenfl, no numpy, no torch.
    tree = ast.parse(Path(store.__file__).read_text())
    imported = {
        (n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in (n.names if isinstance(n, ast.Import) else [n])
    } - {"__future__"}
    assert imported and imported <= set(sys.stdlib_module_names), imported


_KILLED_RUN = """
import os, signal, sys
import greenfl
from greenfl.engine.observers import RoundHook
from greenfl.factories import build_loop

cfg = greenfl.build_config({cfg!r})

done = []

def on_progress(progress):
    if len(done) == 4:  # round 5 is training: round 4 has ended
        os.kill(os.getpid(), signal.SIGKILL)  # kill -9, mid-run

loop = build_loop(cfg, sys.argv[1], observers=[RoundHook(lambda rec: done.append(rec.round),
                                                         on_progress)])
loop.run()
"""


@pytest.mark.parametrize(("batch_s", "kept"), [(0.0, 4), (3600.0, 1)])
def test_a_killed_run_loses_only_what_it_had_not_handed_over(
    tiny_config: RunConfig, tmp_path: Path, batch_s: float, kept: int
) -> None:
    cfg = tiny_config.replace(**{"train.rounds": 6, "engine.ledger_batch_s": batch_s})
    straight = greenfl.run(cfg, tmp_path / "straight")
    out = tmp_path / "killed"
    script = textwrap.dedent(_KILLED_RUN.format(cfg=cfg.to_dict()))
    proc = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    # The writer process outlives the loop: every round it was handed is committed (with
    # batches of an hour, only round 1, which goes at once), and the state matches.
    loop = build_loop(cfg, out, resume=True)
    assert loop.state.round == kept
    loop.run()
    loop.ledger.finish("completed", "done")
    got = [a for (a,) in loop.ledger.conn.execute("SELECT accuracy FROM rounds ORDER BY round")]
    loop.ledger.close()
    assert got == [r.accuracy for r in straight.history]  # the lost rounds were re-run


def test_resume_re_runs_rounds_written_without_their_state(
    tiny_config: RunConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tiny_config.replace(**{"train.rounds": 5, "engine.ledger_batch_s": 3600.0})
    straight = greenfl.run(cfg, tmp_path / "straight")
    out = tmp_path / "failed"
    loop = build_loop(cfg, out)
    fit = loop.transport.fit

    def fit_failing_in_round_3(round_idx, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if round_idx == 3:
            raise RuntimeError("a client transport failed")
        return fit(round_idx, *args, **kwargs)

    monkeypatch.setattr(loop.transport, "fit", fit_failing_in_round_3)
    with pytest.raises(RuntimeError, match="transport failed"):
        loop.run()
    loop.ledger.finish("failed", "interrupted")  # hands round 2 over: mid-round 3, no state
    loop.ledger.close()
    rounds, saved = _committed(out / "ledger.sqlite")
    assert rounds == [1, 2] and saved is not None and saved[0] == 1
    resumed = build_loop(cfg, out, resume=True)
    assert resumed.state.round == 1
    assert _committed(out / "ledger.sqlite")[0] == [1]  # round 2 is re-run, not kept twice
    resumed.run()
    accs = [a for (a,) in resumed.ledger.conn.execute("SELECT accuracy FROM rounds ORDER BY round")]
    resumed.ledger.close()
    assert accs == [r.accuracy for r in straight.history]


def test_without_a_writer_process_the_ledger_is_written_inline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import greenfl.ledger.child as writer_module

    def no_process(*_args: object, **_kwargs: object) -> None:
        raise OSError("Resource temporarily unavailable")

    monkeypatch.setattr(writer_module.subprocess, "Popen", no_process)
    path = tmp_path / "ledger.sqlite"
    w = LedgerWriter(path, batch_s=3600.0)
    assert not w.background and w.writer_pid is None
    w.write_round(_round_row(1), _client_rows(1), {"loop": b"one"})
    assert _committed(path) == ([1], (1, b"one"))  # at once, before any flush
    w.close()
