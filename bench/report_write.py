"""How long writing the HTML report takes for a run of quickstart size (issue 14: <= 0.5 s).

    python bench/report_write.py [--repeats 5]

Makes one quickstart run without a report (``report.html = false``) in a temporary folder,
then, in a fresh interpreter each time, times ``write_run_report`` on it: ``first_s`` is the
first call (lazy imports of the report's modules included, as ``greenfl run`` pays it),
``import_s`` is ``import greenfl.report.html`` before it (greenfl and torch are already
imported by then in ``greenfl run``, so they are imported before the clock starts).
Prints one JSON line per repetition and the medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PROBE = """
import json, sys, time
import greenfl, torch  # greenfl run has both loaded before it writes the report
t0 = time.perf_counter()
from greenfl.report.run_report import write_run_report
t1 = time.perf_counter()
out = write_run_report(sys.argv[1])
t2 = time.perf_counter()
write_run_report(sys.argv[1])
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "first_s": t2 - t1, "again_s": t3 - t2,
                  "report_kb": out.stat().st_size / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    greenfl = Path(sys.executable).with_name("greenfl")
    with tempfile.TemporaryDirectory(prefix="greenfl-report-") as tmp:
        run = Path(tmp) / "run"
        subprocess.run([str(greenfl), "run", "--out", str(run), "-q", "--set",
                        "report.html=false"], check=True)  # fmt: skip
        lines = []
        for _ in range(args.repeats):
            out = subprocess.run([sys.executable, "-c", PROBE, str(run)], check=True,
                                 capture_output=True, text=True).stdout  # fmt: skip
            lines.append(json.loads(out.strip().splitlines()[-1]))
            print(json.dumps({k: round(v, 4) for k, v in lines[-1].items()}), flush=True)
    med = {k: round(statistics.median(x[k] for x in lines), 4) for k in lines[0]}
    print(json.dumps({"median": med, "repeats": args.repeats}))


if __name__ == "__main__":
    main()
