"""Rough edges of the command line (issue 13 part 5): each test failed before its fix."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import greenfl
from greenfl._version import __version__

CLI = [sys.executable, "-m", "greenfl"]
SRC = str(Path(greenfl.__file__).resolve().parents[1])
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]),
    "OMP_NUM_THREADS": "1",
    "PYTHONUNBUFFERED": "1",
}
TINY = ["--set", "data.num_clients=12", "--set", "train.clients_per_round=3"]


def _run(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=ENV
    )


def _start(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, *args], cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def _rounds(db: Path) -> list[int]:
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [r for (r,) in conn.execute("SELECT round FROM rounds ORDER BY round")]
    except sqlite3.Error:
        return []
    finally:
        conn.close()


def _status(db: Path) -> str:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return str(conn.execute("SELECT status FROM runs").fetchone()[0])
    finally:
        conn.close()


def _wait(cond, timeout_s: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_out_that_is_a_file_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("not a folder")
    r = _run("run", "--out", "f", *TINY, cwd=tmp_path)
    assert r.returncode == 2 and "f is a file" in _one_error_line(r.stderr)
    r = _run("run", "--out", "f/sub", *TINY, cwd=tmp_path)
    assert r.returncode == 2 and "lies under f" in _one_error_line(r.stderr)
    r = _run("serve", "--out", "f", cwd=tmp_path)
    assert r.returncode == 2 and "f is a file" in _one_error_line(r.stderr)


def test_version(tmp_path: Path) -> None:
    r = _run("--version", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == f"greenfl {__version__}"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_an_interrupted_run_says_how_to_resume_and_resumes(tmp_path: Path, sig: int) -> None:
    # Enough rounds that the signal lands mid-run on a fast host (60 once finished first).
    rounds = 400
    args = ["run", "--quiet", "--out", "o", *TINY, "--set", f"train.rounds={rounds}"]
    args += ["--set", "engine.ledger_batch_s=0"]
    p = _start(*args, cwd=tmp_path)
    db = tmp_path / "o" / "ledger.sqlite"
    _wait(lambda: len(_rounds(db)) >= 2 or p.poll() is not None, 120, "round 2")
    assert p.poll() is None, p.communicate()
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    done = _rounds(db)
    assert 2 <= len(done) < rounds and done == list(range(1, len(done) + 1))
    m = re.fullmatch(r"interrupted: rounds 1-(\d+) kept in (\S+); resume with: (.+)", lines[0])
    assert m is not None, lines[0]
    assert int(m.group(1)) == len(done) and m.group(2) == str(Path("o") / "ledger.sqlite")
    assert _status(db) == "interrupted"

    command = shlex.split(m.group(3))
    assert command[0] == "greenfl" and "--resume" in command
    r = _run(*command[1:], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert _rounds(db) == list(range(1, rounds + 1))  # each round once
    assert _status(db) == "completed"
    assert (tmp_path / "o" / "report.html").is_file()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SERVE_CONFIG = """
seed = 3
[data]
num_clients = 2
[train]
rounds = 2
clients_per_round = 2
[deploy]
round_timeout_s = 60
join_timeout_s = 60
keepalive_s = 1
"""


@pytest.mark.slow
def test_serve_sigterm_then_resume_writes_the_report(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(textwrap.dedent(SERVE_CONFIG))
    port = _free_port()
    args = ["serve", "c.toml", "--address", f"127.0.0.1:{port}", "--out", "run", "--quiet"]
    server = _start(*args, "--min-clients", "2", cwd=tmp_path)
    assert server.stderr is not None
    seen = [server.stderr.readline()]  # first a warning (no --token-file), then:
    while "listening on" not in seen[-1] and len(seen) < 5:
        seen.append(server.stderr.readline())
    assert "listening on" in seen[-1], seen  # now waiting for clients, none come
    server.send_signal(signal.SIGTERM)
    _, err = server.communicate(timeout=60)
    assert server.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted: no round yet kept in "), err
    assert "Traceback" not in err
    db = tmp_path / "run" / "ledger.sqlite"
    assert _status(db) == "interrupted"

    command = shlex.split(last.split("resume with: ", 1)[1])
    assert "--resume" in command
    resumed = _start(*command[1:], cwd=tmp_path)
    clients = [
        _start("join", "--server", f"127.0.0.1:{port}", "--client-id", str(i), cwd=tmp_path)
        for i in range(2)
    ]
    try:
        out, err = resumed.communicate(timeout=120)
        assert resumed.returncode == 0, err
        for c in clients:
            c.communicate(timeout=60)
    finally:
        for c in (resumed, *clients):
            if c.poll() is None:
                c.kill()
    assert _status(db) == "completed" and _rounds(db) == [1, 2]
    assert (tmp_path / "run" / "report.html").is_file()  # like greenfl run


@pytest.mark.slow
def test_join_without_a_server_says_so_at_once(tmp_path: Path) -> None:
    port = _free_port()
    start = time.monotonic()
    r = _run(
        "join", "--server", f"127.0.0.1:{port}", "--client-id", "0", "--quiet",
        "--retry-for-s", "3", cwd=tmp_path, timeout=120,
    )  # fmt: skip
    took = time.monotonic() - start
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert "Traceback" not in r.stderr
    assert "cannot be reached" in lines[0] and "greenfl serve" in lines[0]
    assert lines[-1].startswith("error: ") and f"127.0.0.1:{port}" in lines[-1]
    assert len(lines) == 2, r.stderr  # no "lost: DEADLINE_EXCEEDED" every 30 s
    assert took < 60


def test_join_gives_up_after_two_minutes_by_default() -> None:
    from greenfl.deploy.client import ClientOptions

    assert ClientOptions("h:1", 0).retry_for_s == 120.0


@pytest.mark.slow
def test_quickstart_runs_twice(tmp_path: Path) -> None:
    """scripts/quickstart.sh's run, twice in the same folder (the install steps aside)."""
    script = Path(SRC).parent / "scripts" / "quickstart.sh"
    runs = [ln for ln in script.read_text().splitlines() if ln.startswith("greenfl run")]
    assert len(runs) == 1  # one run of the offline quickstart
    line = runs[0].replace('"$@"', " ".join([*TINY, "--set", "train.rounds=1", "--quiet"]))
    argv = shlex.split(line)
    for _ in range(2):
        r = _run(*argv[1:], cwd=tmp_path)
        assert r.returncode == 0, r.stderr


def test_fleet_validate_reports_schema_and_references_together(tmp_path: Path) -> None:
    from conftest import ONE_DEVICE_FLEET

    bad = textwrap.dedent(ONE_DEVICE_FLEET).replace("active_power_w = 2.0", "active_power_w = -2")
    bad = bad.replace('region = "R"\nshare', 'region = "Atlantis"\nshare')
    (tmp_path / "f.toml").write_text(bad)
    r = _run("fleet", "validate", "f.toml", cwd=tmp_path)
    assert r.returncode == 2
    assert "active_power_w" in r.stderr and "unknown region 'Atlantis'" in r.stderr


def test_terminal_summary_uses_one_unit_per_quantity(tmp_path: Path) -> None:
    r = _run("run", "--out", "o", *TINY, "--set", "train.rounds=2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    table = r.stdout
    energy = {
        u for ln in table.splitlines() if "energy:" in ln for u in re.findall(r" (k?Wh|J)\b", ln)
    }
    carbon = {
        u
        for ln in table.splitlines()
        if "carbon" in ln and "intelligence" not in ln
        for u in re.findall(r"\d ((?:k|m|µ)?gCO2e|g)\b", ln)
    }
    assert len(energy) == 1 and len(carbon) == 1, table
    assert (
        r.stderr.strip().splitlines()[-1]
        == f"open {Path('o') / 'report.html'} in a browser for the full report"
    )


@pytest.mark.slow
def test_a_run_that_inherits_a_blocked_sighup_still_stops_on_it(tmp_path: Path) -> None:
    """A parent (a test runner, a supervisor) may start greenfl with SIGHUP blocked: the
    run unblocks it, so the signal still ends it as interrupted, not after its last round."""
    args = ["run", "--quiet", "--out", "o", *TINY, "--set", "train.rounds=400"]
    p = subprocess.Popen(
        [*CLI, *args, "--set", "engine.ledger_batch_s=0"],
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP}),
    )
    db = tmp_path / "o" / "ledger.sqlite"
    _wait(lambda: len(_rounds(db)) >= 2 or p.poll() is not None, 120, "round 2")
    p.send_signal(signal.SIGHUP)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert _status(db) == "interrupted" and len(_rounds(db)) < 400
