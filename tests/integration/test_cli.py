import json
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "greenfl"]


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["run", "missing.toml"], "missing.toml"),
        (["run", "--set", "train.rounds=-1"], "train.rounds"),
        (["run", "--set", "data.alpha=-1"], "data.alpha"),
        (["run", "--set", "train.clients_per_round=101"], "clients_per_round"),
        (["run", "--set", "strategy.name=nope"], "unknown strategy"),
        (["run", "--set", "data.dataset=nope"], "unknown dataset"),
        (["run", "--set", "model.name=nope"], "unknown model"),
        (["run", "--set", "train.roundz=3"], "train.roundz: unknown key"),
        (["run", "--set", "train.lr=abc"], "train.lr"),
        (["run", "--nope"], "--nope"),
        (["bogus"], "bogus"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args: list[str], fragment: str, tmp_path: Path) -> None:
    r = _run(*args, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0]
    assert "Traceback" not in r.stderr


def test_broken_toml_and_bad_fleet(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text("[train\n")
    r = _run("run", "c.toml", cwd=tmp_path)
    assert r.returncode == 2 and "c.toml" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "f.toml").write_text("[[device]]\nname='x'\n")
    r = _run("run", "--set", "fleet.catalog=f.toml", cwd=tmp_path)
    assert r.returncode == 2 and "f.toml" in r.stderr and "missing key" in r.stderr
    r = _run("fleet", "validate", "f.toml", cwd=tmp_path)
    assert r.returncode == 2
    assert any("device[0] (x).flops_per_s: missing key" in ln for ln in r.stderr.splitlines())


def test_run_writes_outputs(tmp_path: Path) -> None:
    r = _run("run", "--quiet", "--out", "o", "--set", "train.rounds=2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["rounds_completed"] == 2
    cfg = json.loads((tmp_path / "o" / "config.json").read_text())
    assert cfg["train"]["rounds"] == 2
    assert (tmp_path / "o" / "ledger.sqlite").is_file()


def test_fleet_show_lists_the_catalog() -> None:
    r = _run("fleet", "show")
    assert r.returncode == 0 and "jetson-nano" in r.stdout and "PUE" in r.stdout


def test_existing_ledger_is_not_overwritten_without_force(tmp_path: Path) -> None:
    args = ("run", "--quiet", "--out", "o", "--set", "train.rounds=1")
    assert _run(*args, cwd=tmp_path).returncode == 0
    before = (tmp_path / "o" / "ledger.sqlite").read_bytes()
    r = _run(*args, cwd=tmp_path)
    assert r.returncode == 2 and "already holds a ledger" in r.stderr
    assert (tmp_path / "o" / "ledger.sqlite").read_bytes() == before
    assert _run(*args, "--force", cwd=tmp_path).returncode == 0
