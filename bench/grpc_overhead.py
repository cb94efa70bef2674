"""Round overhead of gRPC deployment against in-process simulation, on the quickstart.

    PYTHONPATH=src python bench/grpc_overhead.py --rounds 20
    PYTHONPATH=src python bench/grpc_overhead.py --rounds 20 --set train.clients_per_round=1

Runs the quickstart (100 clients, 10 per round) in-process, then the same config with a
`greenfl serve` process and one process hosting all 100 clients as `FederatedClient`
threads over loopback gRPC, and compares the rounds' wall time (``rounds.wall_s``: from
selection to the ledger write, so it includes sending the model, training, the updates'
trip back, validation, aggregation and evaluation). In-process clients train one after
the other; deployed clients train at the same time (threads here, machines in real life),
so with several clients per round the gRPC round can be the shorter one. With one client
per round the difference is the transport's own cost."""

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
import time
from pathlib import Path

import torch

import greenfl


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def host_clients(address: str, n: int) -> None:
    from greenfl.deploy.client import ClientOptions, FederatedClient
    from greenfl.footprint.meters import NullMeter

    threads = [
        threading.Thread(
            target=FederatedClient(ClientOptions(address, i, retry_for_s=120), NullMeter()).run
        )
        for i in range(n)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def wall_s(db: Path) -> list[float]:
    conn = sqlite3.connect(db)
    try:
        return [w for (w,) in conn.execute("SELECT wall_s FROM rounds ORDER BY round")]
    finally:
        conn.close()


def transport_s(db: Path) -> list[float]:
    """Per round: wall time less the server's own work and the slowest client's measured
    training, i.e. what moving the model and updates and validating them cost."""
    conn = sqlite3.connect(db)
    try:
        return [
            w - s - c
            for w, s, c in conn.execute(
                "SELECT r.wall_s, r.server_s, MAX(c.compute_s) FROM rounds r "
                "JOIN client_rounds c ON c.round = r.round GROUP BY r.round ORDER BY r.round"
            )
        ]
    finally:
        conn.close()


def describe(name: str, walls: list[float]) -> str:
    rest = walls[1:] or walls  # round 1 pays one-off warm-up costs
    return (
        f"{name:12s} median {statistics.median(rest) * 1e3:7.1f} ms/round, "
        f"mean {statistics.mean(rest) * 1e3:7.1f} ms (rounds 2..{len(walls)})"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--set", action="append", default=[], help="extra config overrides")
    ap.add_argument("--clients-at", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=100, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.clients_at:
        host_clients(args.clients_at, args.n)
        return
    # One torch thread everywhere: on a busy small machine torch's default intra-op threads
    # make a tiny MLP's steps ~10x slower and would swamp what is measured here.
    torch.set_num_threads(1)
    overrides = [f"train.rounds={args.rounds}", *args.set]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        greenfl.run(None, out / "inproc", overrides=overrides)
        local = wall_s(out / "inproc" / "ledger.sqlite")
        port = free_port()
        addr = f"127.0.0.1:{port}"
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        serve = subprocess.Popen(
            [sys.executable, "-m", "greenfl", "serve", "--address", addr, "--out",
             str(out / "grpc"), "--min-clients", "100", "--quiet",
             *[a for o in overrides for a in ("--set", o)]],
            env=env,
        )  # fmt: skip
        clients = subprocess.Popen(
            [sys.executable, __file__, "--clients-at", addr, "--n", "100"], env=env
        )
        t0 = time.perf_counter()
        serve.wait(timeout=1200)
        clients.wait(timeout=60)
        print(f"gRPC run (incl. start-up and 100 joins) took {time.perf_counter() - t0:.1f} s")
        remote = wall_s(out / "grpc" / "ledger.sqlite")
        moving = transport_s(out / "grpc" / "ledger.sqlite")
    print(describe("in-process", local))
    print(describe("gRPC", remote))
    delta = statistics.median(remote[1:]) - statistics.median(local[1:])
    print(f"overhead     {delta * 1e3:+.1f} ms/round (median)")
    print(
        f"gRPC round less server work and slowest client's training: "
        f"median {statistics.median(moving[1:]) * 1e3:.1f} ms"
    )


if __name__ == "__main__":
    main()
