"""greenfl's CLI as a user runs it, one workload, one JSON result line (for bench/run_all.py).

    python bench/greenfl_cli_bench.py --workload W4 [--no-report]

Writes the workload's config (bench/workload_configs.py) to a temporary folder and times
``greenfl run CONFIG --out DIR --quiet`` as a subprocess: wall_s is that process's life,
interpreter start, imports, data, training, ledger, summary and (unless --no-report) the HTML
report. peak_rss_mb is the largest RSS among the children (greenfl and its ledger writer).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from workload_configs import WORKLOADS, raw_config

GREENFL = Path(sys.executable).with_name("greenfl")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", choices=sorted(WORKLOADS), required=True)
    ap.add_argument("--no-report", action="store_true")
    args = ap.parse_args()
    raw = raw_config(args.workload)
    raw["report"] = {"html": not args.no_report}
    with tempfile.TemporaryDirectory(prefix="greenfl-cli-") as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(json.dumps(raw))  # JSON is YAML
        cmd = [str(GREENFL), "run", str(path), "--out", f"{tmp}/run", "--quiet"]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        wall_s = time.perf_counter() - t0
        summary = json.loads((Path(tmp) / "run" / "summary.json").read_text())
        has_report = (Path(tmp) / "run" / "report.html").exists()
    line = {
        "framework": "greenfl-cli",
        "workload": args.workload,
        "wall_s": round(wall_s, 3),
        "loop_s": round(wall_s, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "final_accuracy": round(float(summary["final_accuracy"]), 4),
        "report": has_report,
        "version": "greenfl CLI",
    }
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
