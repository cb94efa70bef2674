"""Issue 30 item 4, a small run of the deployment target: asynchronous serving on loopback,
N clients streaming updates to `greenfl serve` (engine.mode = "async", FedBuff) for a
while, then the server is stopped (SIGTERM: the run is marked interrupted, as a resumable
run is), and the ledger and the pending store are checked:

- nothing lost: every update a client was told was accepted is applied (a ledger row) or
  still stored (accepted after the last step);
- none twice: one ledger row per (client, model version).

The issue's own target (200 `greenfl join` processes for 10 minutes) needs a larger
machine than this bench's default; the clients here are threads of this process (the same
code as `greenfl join`, one GIL), with a spread of speeds (0 to ``--max-delay-s`` extra per
task).

Run: python bench/async_deploy.py [--clients 20] [--seconds 60] [--buffer 5] [--out DIR]
Prints one JSON object."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

CONFIG = """
seed = 0
[data]
num_clients = {n}
[train]
rounds = 100000
clients_per_round = {n}
[engine]
mode = "async"
[strategy]
name = "fedbuff"
[async]
concurrency = {n}
buffer_size = {k}
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


def rows(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def steps_in(db: Path) -> int:
    """Server steps in the ledger so far (0 while serve is still creating its tables)."""
    try:
        return int(rows(db, "SELECT COUNT(*) FROM rounds")[0][0])
    except sqlite3.OperationalError:
        return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--buffer", type=int, default=5)
    ap.add_argument("--max-delay-s", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()

    import torch

    from greenfl.deploy.client import ClientOptions, FederatedClient
    from greenfl.footprint.meters import NullMeter
    from greenfl.ledger.schema import AGGREGATED_SQL

    torch.set_num_threads(1)
    work = a.out or Path(tempfile.mkdtemp(prefix="async-deploy-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "c.toml").write_text(textwrap.dedent(CONFIG.format(n=a.clients, k=a.buffer)))
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "greenfl", "serve", "c.toml", "--address", f"127.0.0.1:{port}",
         "--out", "run", "--min-clients", str(a.clients), "--quiet"],
        cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    n = a.clients
    delays = [a.max_delay_s * i / max(n - 1, 1) for i in range(n)]
    clients = [
        FederatedClient(
            ClientOptions(f"127.0.0.1:{port}", i, retry_for_s=120, test_delay_s=delays[i]),
            NullMeter(),
        )
        for i in range(n)
    ]
    threads = [threading.Thread(target=c.run, daemon=True) for c in clients]
    for t in threads:
        t.start()
    db = work / "run" / "ledger.sqlite"
    store = work / "run" / "pending-updates.sqlite"
    while not db.exists() or not steps_in(db):
        if server.poll() is not None:
            raise SystemExit(f"serve exited: {server.stderr.read() if server.stderr else ''}")
        time.sleep(0.2)
    t0 = time.monotonic()
    steps0 = rows(db, "SELECT COUNT(*) FROM rounds")[0][0]
    time.sleep(a.seconds)
    steps1 = rows(db, "SELECT COUNT(*) FROM rounds")[0][0]
    elapsed = time.monotonic() - t0
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=60)
    time.sleep(1.0)
    acked = sum(c.stats.rounds - c.stats.rejected for c in clients)
    agg = AGGREGATED_SQL
    got = rows(db, f"SELECT client_id, model_version, staleness FROM client_rounds WHERE {agg}")
    rounds = [r for (r,) in rows(db, f"SELECT round FROM client_rounds WHERE {agg}")]
    left = rows(store, "SELECT client_id, version FROM pending_updates")
    pairs = [(c, v) for c, v, _ in got]
    per_client = [sum(c == i for c, _, _ in got) for i in range(n)]
    stale = [s for _, _, s in got]
    out = {
        "clients": n,
        "buffer_size": a.buffer,
        "seconds": round(elapsed, 1),
        "server_steps": steps1 - steps0,
        "steps_per_s": round((steps1 - steps0) / elapsed, 2),
        "updates_applied": len(got),
        "updates_per_s": round(sum(steps0 < r <= steps1 for r in rounds) / elapsed, 1),
        "acked_accepted": acked,
        "stored_not_applied": len(left),
        "lost": max(acked - len(got) - len(left), 0),
        "applied_twice": len(pairs) - len(set(pairs)),
        "stored_and_applied": len(set(left) & set(pairs)),
        "mean_staleness": round(sum(stale) / max(len(stale), 1), 2),
        "max_staleness": max(stale, default=0),
        "updates_fastest_client": per_client[0],
        "updates_slowest_client": per_client[-1],
        "status": rows(db, "SELECT status FROM runs")[0][0],
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
