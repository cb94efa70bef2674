"""Secure aggregation over the real gRPC transport: a `greenfl serve --secagg` process and
50 clients (threads of this process running the real client code), 30% of which drop out
after sending their masked input. The round completes, every update counts, and the model
equals the plain (simulated) FedAvg of the same round up to the fixed-point error."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import greenfl
from greenfl.config import load_config
from tests.integration.loopback import run_in_threads

SRC = str(Path(greenfl.__file__).resolve().parents[1])
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]),
    "OMP_NUM_THREADS": "1",
    "PYTHONUNBUFFERED": "1",
}
N = 50
CONFIG = f"""
seed = 5
[data]
num_clients = {N}
[train]
rounds = 1
clients_per_round = {N}
[fleet]
catalog = "builtin"
[deploy]
round_timeout_s = 120
join_timeout_s = 120
keepalive_s = 1
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_clients(addr: str, drop_after: dict[int, str]) -> tuple[list, list[BaseException]]:
    from greenfl.deploy.client import ClientOptions, FederatedClient
    from greenfl.footprint.meters import NullMeter

    clients = [
        FederatedClient(
            ClientOptions(
                addr,
                i,
                backoff_max_s=2.0,
                retry_for_s=120,
                test_secagg_drop_after=drop_after.get(i, ""),
            ),
            NullMeter(),
        )  # fmt: skip
        for i in range(N)
    ]
    return clients, run_in_threads(clients, 240)


def serve_one_round(tmp_path: Path, droppers: dict[int, str]) -> tuple[Path, list]:
    """A `greenfl serve --secagg` round of N client threads, ``droppers`` leaving after the
    step named; the run folder and the clients."""
    import torch

    torch.set_num_threads(1)
    cfg = tmp_path / "c.toml"
    cfg.write_text(textwrap.dedent(CONFIG))
    addr = f"127.0.0.1:{free_port()}"
    server = subprocess.Popen(
        [sys.executable, "-m", "greenfl", "serve", str(cfg), "--address", addr, "--out",
         str(tmp_path / "run"), "--min-clients", str(N), "--quiet", "--secagg"],
        env=ENV, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        clients, errors = run_clients(addr, droppers)
        _, err = server.communicate(timeout=240)
    finally:
        server.kill()
    assert server.returncode == 0, err
    assert not errors, errors
    return tmp_path / "run", clients


@pytest.mark.slow
def test_50_clients_30_percent_dropping_after_masking_finish_the_round(tmp_path: Path) -> None:
    droppers = {i: "mask" for i in range(0, N, 10)} | {i: "mask" for i in range(1, 50, 5)}
    assert len(droppers) == 15  # 30%
    run, clients = serve_one_round(tmp_path, droppers)
    cfg = tmp_path / "c.toml"
    log = (run / "server.log").read_text()
    assert "secure aggregation of 50 of 50 updates" in log
    db = sqlite3.connect(run / "ledger.sqlite")
    statuses = db.execute("SELECT status, COUNT(*) FROM client_rounds GROUP BY status").fetchall()
    assert statuses == [("completed", N)]
    (acc, loss), = db.execute("SELECT accuracy, loss FROM rounds").fetchall()  # fmt: skip
    up = [b for (b,) in db.execute("SELECT bytes_up FROM client_rounds")]
    db.close()
    # The server saw only the sum, and the sum is that of all 50 updates: the model equals
    # the plain simulated round's up to the encoding error.
    sim = greenfl.run(load_config(cfg)).history[0]
    assert acc == pytest.approx(sim.accuracy, abs=0.01)
    assert loss == pytest.approx(sim.loss, rel=1e-3)
    # Each client sent its keys, shares and masked input (~4 bytes a value, as float32).
    assert min(up) > 4 * 4810
    assert all(c.stats.rounds == 1 for c in clients)


@pytest.mark.slow
def test_clients_dropping_before_their_masked_input_are_left_out_of_the_sum(
    tmp_path: Path,
) -> None:
    # 5 clients leave after sharing their keys, before their masked input: the server must
    # remove their pairwise masks from the others' inputs (from the survivors' shares of
    # their keys) and sum the 45 that arrived; 10 more leave after masking and still count.
    droppers = {i: "share" for i in range(3, N, 10)} | {i: "mask" for i in range(0, N, 5)}
    run, _ = serve_one_round(tmp_path, droppers)
    log = (run / "server.log").read_text()
    assert "secure aggregation of 45 of 50 updates" in log
    db = sqlite3.connect(run / "ledger.sqlite")
    rows = dict(db.execute("SELECT client_id, status FROM client_rounds").fetchall())
    ((acc, loss),) = db.execute("SELECT accuracy, loss FROM rounds").fetchall()
    db.close()
    assert {c for c, s in rows.items() if s != "completed"} == set(range(3, N, 10))
    # A mask left in the sum would be uniform 32-bit noise in every weight and wreck the
    # model; 45 of the 50 honest updates give nearly the plain round's.
    sim = greenfl.run(load_config(tmp_path / "c.toml")).history[0]
    assert acc == pytest.approx(sim.accuracy, abs=0.05)
    assert loss == pytest.approx(sim.loss, rel=0.05)
