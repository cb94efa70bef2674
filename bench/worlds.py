"""Issue 28's worlds for the scenario tables (bench/scenario_tables.py --world).

A world is the fleet, the eligibility and the round rules every policy of a table runs in;
it is defined here once, never tuned, and every policy (FedAvg, the anchors, greenfl) is
tuned and measured in the same one.

global-any          the built-in catalog as it is: devices in 15 countries, the server in
                    the US, fleet.eligibility = "any" (diurnal availability, any network).
global-production   the built-in catalog under production rules: fleet.eligibility =
                    "production" (a device trains only while idle, charging and on an
                    unmetered network, by its class's daily schedule in local time, over its
                    home Wi-Fi; rounds have a check-in and a configuration phase),
                    fleet.over_selection = 0.3 and fleet.dropout_prob = 0.08: Bonawitz et
                    al., "Towards Federated Learning at Scale: System Design" (SysML 2019)
                    ask 130% of the goal count and report 6-10% of devices dropping out.
country-production-DE, -GB, -FR
                    the same production rules on a fleet in one country: every population
                    entry and the server in it, with its real 2020 hourly trace
                    (examples/worlds/fleet-<CC>.toml, written by ``python bench/worlds.py``
                    from the built-in catalog).

Start times: a run of seed s starts at ``start_time(s)``, drawn by a fixed seeded rule
across the year, the same for every policy under that seed (so pairs stay paired), so
that no single night decides a ratio.

    python bench/worlds.py            # (re)write examples/worlds/fleet-{DE,GB,FR}.toml
    python bench/worlds.py --check    # fail if they differ from what would be written
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path

import numpy as np
import tomli_w
import tomllib

ROOT = Path(__file__).resolve().parent.parent
WORLDS_DIR = ROOT / "examples" / "worlds"
COUNTRIES = ("DE", "GB", "FR")

# Production rules (Bonawitz et al., SysML 2019): the world's definition, never tuned.
PRODUCTION = [
    'fleet.eligibility="production"',
    "fleet.over_selection=0.3",
    "fleet.dropout_prob=0.08",
]


def fleet_path(country: str) -> Path:
    return WORLDS_DIR / f"fleet-{country}.toml"


WORLDS: dict[str, list[str]] = {
    "global-any": [],
    "global-production": PRODUCTION,
    **{
        f"country-production-{cc}": [
            f"fleet.catalog={str(fleet_path(cc).relative_to(ROOT))!r}".replace("'", '"'),
            *PRODUCTION,
        ]
        for cc in COUNTRIES
    },
}


# --- start times -------------------------------------------------------------------------

YEAR = 2026  # the year the built-in examples run in; traces map date and hour onto 2020
START_RULE = (
    "seed s starts at 2026-01-01T00:00Z + h hours, h = numpy.random.default_rng([28, s])"
    ".integers(0, 8760): an hour of the year, uniform, seeded by (28, s)"
)


def start_time(seed: int) -> datetime:
    """Seed ``seed``'s start: a whole hour drawn uniformly across the year (START_RULE)."""
    hour = int(np.random.default_rng([28, seed]).integers(0, 8760))
    return datetime(YEAR, 1, 1, tzinfo=timezone.utc) + timedelta(hours=hour)


def start_iso(seed: int) -> str:
    return start_time(seed).strftime("%Y-%m-%dT%H:%M:%SZ")


def seed_sets(seed: int) -> list[str]:
    """The --set overrides of one benchmark run at ``seed``: the seed, its start time, and
    no HTML report (the tables read summary.json and the ledger)."""
    return [f"seed={seed}", f'fleet.start_time="{start_iso(seed)}"', "report.html=false"]


# --- country fleets ----------------------------------------------------------------------


def country_fleet(country: str) -> dict:
    """The built-in catalog with every population entry and the server in ``country``
    (entries that become the same device, network and region merged, shares added), the
    region list cut to that country, its trace path relative to examples/worlds/."""
    folder = resources.files("greenfl.fleet").joinpath("catalog")
    raw = tomllib.loads(folder.joinpath("builtin.toml").read_text())
    region = next(r for r in raw["region"] if r["name"] == country)
    if "trace" in region:
        trace = Path(str(folder)) / region["trace"]
        region["trace"] = os.path.relpath(trace.resolve(), WORLDS_DIR)
    merged: dict[tuple, dict] = {}
    for p in raw["population"]:
        q = {**p, "region": country}
        key = tuple(sorted((k, v) for k, v in q.items() if k != "share"))
        if key in merged:
            merged[key]["share"] = round(merged[key]["share"] + q["share"], 6)
        else:
            merged[key] = q
    return {
        **raw,
        "region": [region],
        "server": {**raw["server"], "region": country},
        "population": list(merged.values()),
    }


def fleet_text(country: str) -> str:
    head = (
        f"# World country-production-{country} (bench/worlds.py; do not edit, run "
        "`python bench/worlds.py` instead):\n"
        f"# the built-in catalog (src/greenfl/fleet/catalog/builtin.toml) with every "
        f"population entry and the server in {country},\n"
        "# entries that became the same (device, network, region) merged with their shares "
        "added, and the region's real 2020\n"
        "# hourly trace kept (its path relative to this file). Devices, networks and every "
        "figure's source are the catalog's.\n\n"
    )
    return head + tomli_w.dumps(country_fleet(country))


def write_fleets(check: bool = False) -> list[Path]:
    from greenfl.fleet import load_fleet

    stale = []
    for cc in COUNTRIES:
        path, text = fleet_path(cc), fleet_text(cc)
        if check:
            if not path.is_file() or path.read_text() != text:
                stale.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        fleet = load_fleet(path)  # validates it, and that the trace resolves
        assert all(p.region == cc for p in fleet.population) and fleet.server.region == cc
        assert Path(fleet.regions[0].trace).is_file(), fleet.regions[0].trace
    return stale


# --- provenance --------------------------------------------------------------------------


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()


def _where(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def provenance(argv: list[str] | None = None) -> dict:
    """What a recorded number needs to be reproduced: the commit (and whether the tree
    had uncommitted changes under src/ or bench/), the command, the versions, the machine
    and the date."""
    import torch

    import greenfl

    # The code and inputs that ran; results being written (bench/results/) are not code.
    dirty = _git(
        "status", "--porcelain", "--", "src", "bench", "examples", "pyproject.toml",
        ":(exclude)bench/results",
    )  # fmt: skip
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "commit": _git("rev-parse", "HEAD"),
        "dirty": bool(dirty),
        "dirty_paths": dirty.splitlines()[:50],
        "command": " ".join([Path(sys.executable).name, *(argv if argv is not None else sys.argv)]),
        "python": platform.python_version(),
        "greenfl": greenfl.__version__,
        # the source that ran: this checkout's src/greenfl (so commit and dirty describe it)
        "greenfl_source": _where(Path(greenfl.__file__).parent),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="fail if the files are stale")
    args = ap.parse_args()
    stale = write_fleets(check=args.check)
    if stale:
        sys.exit(f"stale: {', '.join(map(str, stale))} (run python bench/worlds.py)")
    for seed in range(5):
        print(f"seed {seed}: starts {start_iso(seed)}")


if __name__ == "__main__":
    main()
