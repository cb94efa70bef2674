"""The same workload as a Flower app with greenfl's mod and wrapper, and as ``greenfl run``:
client compute FLOPs, bytes, energy and gCO2e side by side (issue 32's target: within 1%).

    python bench/flower_equivalence.py [--rounds 5 --clients 10]

The app is examples/flower (FedAvg, digits, greenfl's MLP, every client every round), run
in Flower's simulation engine; the ``greenfl run`` config is the one the app's ``workload``
builds from the same run config. Results: bench/results/flower_equivalence.json."""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from greenfl.api import run

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "flower_equivalence.json"
COLUMNS = {
    "flops": "SUM(flops)",
    "bytes_down": "SUM(bytes_down)",
    "bytes_up": "SUM(bytes_up)",
    "client_compute_j": "SUM(energy_compute_j)",
    "client_comm_j": "SUM(energy_comm_j)",
}


def totals(run: Path) -> dict[str, float]:
    conn = sqlite3.connect(run / "ledger.sqlite")
    sql = ", ".join(COLUMNS.values())
    row = conn.execute(f"SELECT {sql} FROM client_rounds").fetchone()
    summary = json.loads((run / "summary.json").read_text())
    out = dict(zip(COLUMNS, (float(v) for v in row), strict=True))
    out["server_j"] = summary["energy_j"]["server"]
    out["total_g"] = summary["carbon_g"]["total"]
    out["final_accuracy"] = summary["final_accuracy"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--set", default="", help='greenfl config keys, "KEY=VALUE; KEY=VALUE"')
    ap.add_argument("--out", default=str(RESULTS), help="where the JSON goes")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "examples" / "flower"))
    from greenfl_flower_example import client_app, server_app
    from greenfl_flower_example.task import workload

    run_config = {
        "num-server-rounds": args.rounds, "num-clients": args.clients, "fraction-train": 1.0,
        "local-epochs": 5, "batch-size": 8, "lr": 0.1, "seed": 0, "greenfl-set": args.set,
    }
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        run(workload(run_config), t / "greenfl-run")  # greenfl.run, as `greenfl run` does
        os.environ["FLWR_TELEMETRY_ENABLED"] = "0"
        from flwr.simulation import run_simulation

        run_simulation(
            server_app=server_app.make_app({**run_config, "greenfl-out": str(t / "flower-run")}),
            client_app=client_app.make_app(run_config),
            num_supernodes=args.clients,
            backend_config={"client_resources": {"num_cpus": 1}},
        )
        a, b = totals(t / "greenfl-run"), totals(t / "flower-run")
    rows = {k: {"greenfl_run": a[k], "flower": b[k], "ratio": b[k] / a[k]} for k in a}
    for k, r in rows.items():
        print(f"{k:18s} greenfl run {r['greenfl_run']:.6g}  flower {r['flower']:.6g}  "
              f"ratio {r['ratio']:.5f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "measured_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "run_config": run_config, "totals": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
