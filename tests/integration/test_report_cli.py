"""greenfl run writes report.html; report / estimate / export from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # several greenfl processes, each importing torch

CLI = [sys.executable, "-m", "greenfl"]
TINY = [
    "--set",
    "data.num_clients=12",
    "--set",
    "train.rounds=2",
    "--set",
    "train.clients_per_round=3",
]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    for name, seed in (("a", 0), ("b", 1)):
        r = _run(
            "run", "--quiet", "--out", f"runs/{name}", "--set", f"seed={seed}", *TINY, cwd=root
        )
        assert r.returncode == 0, r.stderr
    return root


def test_run_writes_a_report(two_runs: Path) -> None:
    html = (two_runs / "runs" / "a" / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and html.count("<svg") >= 6
    assert "http://" not in html.replace("http://www.w3.org/", "")  # SVG namespaces only
    assert "https://" not in html and "<script" not in html


def test_report_off_by_config(tmp_path: Path) -> None:
    r = _run("run", "--quiet", "--out", "o", "--set", "report.html=false", *TINY, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "o" / "report.html").exists()


def test_multi_run_report_and_errors(two_runs: Path) -> None:
    r = _run("report", "runs/a", "runs/b", "--out", "cmp", cwd=two_runs)
    assert r.returncode == 0, r.stderr
    html = (two_runs / "cmp" / "report.html").read_text()
    assert 'data-plot="overlay"' in html and "data-run='a'" in html and "data-run='b'" in html
    # a folder of runs (greenfl compare's --out) works the same
    r = _run("report", "runs", "--out", "cmp2", cwd=two_runs)
    assert r.returncode == 0 and (two_runs / "cmp2" / "report.html").is_file()
    r = _run("report", "runs/a", "runs/b", cwd=two_runs)
    assert r.returncode == 2 and r.stderr.startswith("error: --out")
    r = _run("report", "nowhere", cwd=two_runs)
    assert r.returncode == 2 and "nowhere" in r.stderr and "Traceback" not in r.stderr


def test_estimate_centralised_beside_the_run(two_runs: Path) -> None:
    r = _run("estimate", "centralised", "--run", "runs/a", "--json", cwd=two_runs)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    c = d["centralised"]
    assert c["carbon_g"] == pytest.approx(
        c["server_carbon_g"] + c["upload_operational_g"] + c["upload_embodied_g"]
    )
    # the work is the FLOPs of the aggregated client updates in the ledger
    import sqlite3

    conn = sqlite3.connect(two_runs / "runs" / "a" / "ledger.sqlite")
    flops = conn.execute("SELECT SUM(flops) FROM client_rounds WHERE status='completed'").fetchone()
    conn.close()
    assert c["work_flops"] == pytest.approx(flops[0])
    assert c["train_s"] == pytest.approx(c["work_flops"] / c["server_flops_per_s"])
    assert (two_runs / "runs" / "a" / "centralised.json").is_file()
    r = _run("estimate", "centralised", "--work", "nope", *TINY, cwd=two_runs)
    assert r.returncode == 2 and "--work" in r.stderr


def test_export_cli(two_runs: Path) -> None:
    r = _run("export", "runs/b", "--format", "csv", cwd=two_runs)
    assert r.returncode == 0, r.stderr
    assert (two_runs / "runs" / "b" / "export" / "client_rounds.csv").is_file()
    r = _run("export", "runs/b", "--format", "xml", cwd=two_runs)
    assert r.returncode == 2 and "--format" in r.stderr
