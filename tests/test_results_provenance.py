"""Recorded benchmark numbers reproduce (issue 28): every block of numbers under
bench/results/worlds/ names the commit, the command and the environment that produced it,
and one recorded row, a digits run of greenfl's tuned policy in country-production-DE,
is run again from what the record says (base file, overrides, seed, start time) through
the public API and compared.

Tolerance: rounds to target must match exactly, and gCO2e to target within 0.1%
(relative). On one machine and software stack a run is deterministic: the same config and
seed give bit-identical numbers. Elsewhere, float32 training kernels (BLAS builds, vector
widths) may round their reductions differently in the last bits; that moves the float64
accounting by orders of magnitude less than 0.1% as long as every round picks the same
cohort and the target is reached in the same round. If such bits change a cohort or the
target's round, gCO2e moves by several percent and the test fails, as it should: the
record would no longer reproduce. A recorded number off by 1% fails it
(test_a_wrong_record_fails)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

import greenfl
from greenfl.config import load_config

ROOT = Path(__file__).resolve().parent.parent
WORLDS = ROOT / "bench" / "results" / "worlds"
REL_TOL = 1e-3
# The cheapest recorded row: greenfl's tuned digits policy in one country (~1 s a run).
ROW = ("country-production-DE", "digits", "greenfl", 0)

PROVENANCE_KEYS = (
    "commit", "dirty", "command", "python", "greenfl", "torch", "numpy", "platform", "cpu",
    "date",
)  # fmt: skip


def records() -> list[tuple[str, str, str, dict]]:
    """Every block of recorded numbers: (file, scenario, policy or lever, block)."""
    out = []
    for path in sorted(WORLDS.glob("*.json")):
        res = json.loads(path.read_text())
        for scenario, sc in res["scenarios"].items():
            blocks = [(name, b) for name, b in sc.get("policies", {}).items()]
            for key in [k for k in sc if k.startswith("levers")]:
                blocks += [(f"{key}: {name}", b) for name, b in sc[key].items()]
            out += [(path.name, scenario, name, block) for name, block in blocks]
    return out


def test_results_are_recorded() -> None:
    assert (WORLDS / f"{ROW[0]}.json").is_file()
    assert records()


@pytest.mark.parametrize("where", records(), ids=lambda r: f"{r[0]}:{r[1]}:{r[2]}")
def test_every_record_names_its_provenance(where: tuple[str, str, str, dict]) -> None:
    block = where[3]
    prov = block["provenance"]
    for key in PROVENANCE_KEYS:
        assert prov.get(key) not in (None, ""), f"{where[:3]}: provenance lacks {key}"
    assert re.fullmatch(r"[0-9a-f]{40}", prov["commit"])
    assert prov["command"].startswith("python bench/")
    assert prov["dirty"] is False, f"{where[:3]}: recorded from a tree with changes"
    assert block["overrides"], "the settings a run of this row needs"


def recorded(world: str, scenario: str, policy: str, seed: int) -> tuple[dict, dict, int]:
    res = json.loads((WORLDS / f"{world}.json").read_text())
    sc = res["scenarios"][scenario]
    return res, sc, sc["seeds"].index(seed)


def rerun(world: str, scenario: str, policy: str, seed: int) -> dict:
    """The row's run again, from the record alone, through greenfl.run."""
    res, sc, _ = recorded(world, scenario, policy, seed)
    block = sc["policies"][policy]
    start = res["start_times"][str(seed)]
    overrides = [*block["overrides"], f"seed={seed}", f'fleet.start_time="{start}"']
    cfg = load_config(ROOT / sc["base"], overrides)
    return greenfl.run(cfg).summary


def mismatch(summary: dict, total_g: float, rounds: int) -> str | None:
    """Why a rerun does not reproduce a recorded (gCO2e, rounds); None when it does."""
    if summary["rounds_to_target"] != rounds:
        return f"rounds to target {summary['rounds_to_target']}, recorded {rounds}"
    got = summary["carbon_g_to_target"]
    if not math.isclose(got, total_g, rel_tol=REL_TOL):
        return f"gCO2e to target {got!r}, recorded {total_g!r} (tolerance {REL_TOL:.0e})"
    return None


@pytest.fixture(scope="module")
def row_rerun() -> dict:
    import os

    here = os.getcwd()
    os.chdir(ROOT)  # the record's fleet file is a path from the repository root
    try:
        return rerun(*ROW)
    finally:
        os.chdir(here)


def test_a_recorded_row_reproduces(row_rerun: dict) -> None:
    _, sc, i = recorded(*ROW)
    block = sc["policies"][ROW[2]]
    problem = mismatch(row_rerun, block["total_g"][i], block["rounds"][i])
    assert problem is None, f"{ROW}: {problem}"


def test_a_wrong_record_fails(row_rerun: dict) -> None:
    _, sc, i = recorded(*ROW)
    block = sc["policies"][ROW[2]]
    g, rounds = block["total_g"][i], block["rounds"][i]
    assert mismatch(row_rerun, g * 1.01, rounds) is not None
    assert mismatch(row_rerun, g, rounds + 1) is not None
