"""Round wall time of a deployment with early round close on and off.

    PYTHONPATH=src python bench/early_close.py --rounds 5 --slow-s 3

A `greenfl serve` process and 4 clients (threads of this process, over loopback gRPC) of the
quickstart's digits MLP: 4 selected per round (over-selection 0.34), 3 needed; client 3 is
slow (it sleeps --slow-s seconds in each task, as a slow device would). With
``deploy.early_close = true`` (the default) a round closes when 3 updates are in and client
3's task is withdrawn; with ``false`` every round waits for client 3 too (whose update the
accounting then drops as a straggler anyway). Prints the median ``rounds.wall_s`` of each."""

from __future__ import annotations

import argparse
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import torch

CONFIG = """
seed = 0
[data]
num_clients = 4
[train]
rounds = {rounds}
clients_per_round = 3
local_epochs = 5
batch_size = 8
[fleet]
over_selection = 0.34
[deploy]
round_timeout_s = 60
keepalive_s = 1
early_close = {early}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_run(work: Path, rounds: int, slow_s: float, early: bool) -> tuple[list[float], list]:
    from greenfl.deploy.client import ClientOptions, FederatedClient
    from greenfl.footprint.meters import NullMeter

    (work / "c.toml").write_text(CONFIG.format(rounds=rounds, early=str(early).lower()))
    addr = f"127.0.0.1:{free_port()}"
    import greenfl

    # The server imports the greenfl under test (an absolute path: it runs in ``work``).
    src = str(Path(greenfl.__file__).resolve().parents[1])
    path = os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    server = subprocess.Popen(
        [sys.executable, "-m", "greenfl", "serve", "c.toml", "--address", addr, "--out", "run",
         "--min-clients", "4", "--quiet"],
        cwd=work, env=env,
    )  # fmt: skip
    clients = [
        FederatedClient(
            ClientOptions(addr, i, retry_for_s=60, test_delay_s=slow_s if i == 3 else 0.0),
            NullMeter(),
        )
        for i in range(4)
    ]
    threads = [threading.Thread(target=c.run, daemon=True) for c in clients]
    for t in threads:
        t.start()
    if server.wait(timeout=600) != 0:
        raise SystemExit("serve failed")
    for t in threads:
        t.join(timeout=30)
    conn = sqlite3.connect(work / "run" / "ledger.sqlite")
    try:
        walls = [w for (w,) in conn.execute("SELECT wall_s FROM rounds ORDER BY round")]
        statuses = conn.execute(
            "SELECT status, COUNT(*) FROM client_rounds GROUP BY status ORDER BY status"
        ).fetchall()
    finally:
        conn.close()
    return walls, statuses


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--slow-s", type=float, default=3.0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    for early in (True, False):
        with tempfile.TemporaryDirectory() as d:
            walls, statuses = one_run(Path(d), args.rounds, args.slow_s, early)
        median = statistics.median(walls)
        print(
            f"early_close={str(early).lower():5}  median round wall {median:.3f} s"
            f"  (rounds: {', '.join(f'{w:.3f}' for w in walls)})  statuses {statuses}"
        )


if __name__ == "__main__":
    main()
