"""What a run was started with, as digests: its config (by section), its fleet (by device,
network, region, schedule, server and population), the carbon-intensity traces its regions
read, and the code (greenfl's version and git commit). Recorded at the run's start (the
first link of the ledger's hash chain, greenfl.ledger.chain), and compared on ``--resume``
and ``greenfl verify`` with what the run would read now, so a changed input is named, not
silently used.

Digests per item, not one per file: a mismatch can then say *what* changed ("device rpi4")
instead of only that something did."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

FORMAT = 1
# The fleet's lists and the field that names each item in them.
_NAMED = (("device", "name"), ("network", "name"), ("region", "name"), ("schedule", "name"))
MISSING = "missing"  # the digest of a trace file that cannot be read


def digest_of(value: Any) -> str:
    """A JSON-able value's SHA-256: keys sorted, floats by their exact repr."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def config_digests(config: Mapping[str, Any]) -> dict[str, str]:
    """One digest per config section (a top-level scalar, e.g. ``seed``, is its own)."""
    return {key: digest_of(value) for key, value in config.items()}


def fleet_digests(fleet: Mapping[str, Any]) -> dict[str, str]:
    """One digest per fleet item, keyed "device rpi4", "region PL", "server", "population".
    A region's trace is digested by its content (trace_digests), not its path here: a
    fleet folder moved whole is the same fleet."""
    out: dict[str, str] = {}
    for kind, key in _NAMED:
        for item in fleet.get(kind) or []:
            body = {k: v for k, v in item.items() if not (kind == "region" and k == "trace")}
            out[f"{kind} {item[key]}"] = digest_of(body)
    for kind in ("server", "population"):
        if kind in fleet:
            out[kind] = digest_of(fleet[kind])
    return out


def trace_digests(fleet: Mapping[str, Any]) -> dict[str, str]:
    """The content digest of each region's trace file, keyed by region ("missing" for a
    file that cannot be read)."""
    out: dict[str, str] = {}
    for region in fleet.get("region") or []:
        path = region.get("trace")
        if path:
            try:
                out[str(region["name"])] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            except OSError:
                out[str(region["name"])] = MISSING
    return out


def git_commit() -> str | None:
    """The commit of the checkout greenfl runs from, or None (an installed package, or no
    git)."""
    root = Path(__file__).resolve().parents[3]  # src/greenfl/ledger/ -> the checkout
    if not (root / ".git").exists():
        return None
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def code_version(version: str) -> dict[str, str | None]:
    return {"greenfl": version, "commit": git_commit()}


def describe_code(code: Mapping[str, Any]) -> str:
    commit = code.get("commit")
    return f"greenfl {code.get('greenfl')}" + (f" commit {str(commit)[:12]}" if commit else "")


def fingerprint(
    config: Mapping[str, Any], fleet: Mapping[str, Any], version: str
) -> dict[str, Any]:
    """A run's fingerprint at its start. ``record`` is what the ledger's ``runs`` row holds
    (config_json, fleet_json); ``inputs`` what a resumed run reads again (the fleet file,
    its traces, the code). They start equal, and part when a change is accepted for one."""
    fleet_items = fleet_digests(fleet)
    return {
        "format": FORMAT,
        "fleet_path": str(fleet.get("path", "")),
        "record": {"config": config_digests(config), "fleet": fleet_items},
        "inputs": {
            "fleet": dict(fleet_items),
            "traces": trace_digests(fleet),
            "code": code_version(version),
        },
    }
