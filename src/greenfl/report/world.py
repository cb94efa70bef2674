"""What a run recorded about its world, read back from the ledger's meta table: the
carbon-intensity curves its accounting used and how many clients each region and device
held. The run writes both (greenfl.accounting.curves); the report only reads them, so it
shows what the run saw without loading the config, the fleet or the grid sources again.

A ledger written before the keys existed has neither: each reader then returns None and
the report says the figure was not recorded, rather than guessing it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from greenfl.ledger.meta_keys import CI_SOURCES_KEY, GROUPS_KEY, INTENSITY_KEY

# The ledger meta keys, as greenfl.accounting.curves writes them (a test holds the two equal;
# the report does not import the accounting, which reaches the grid sources).


@dataclass(frozen=True)
class RegionCurve:
    label: str  # "Germany"
    source: str  # "2020 hourly trace, repeated yearly", "annual mean", ...
    ci_g_per_kwh: list[float]  # at each of IntensityCurves.t_s


@dataclass(frozen=True)
class IntensityCurves:
    start_utc: datetime
    mode: str  # "auto", "annual" or "constant"
    constant_g_per_kwh: float | None
    server_region: str
    t_s: list[float]  # sample times, seconds since the run's start
    regions: dict[str, RegionCurve]  # every region holding clients, and the server's

    def legend_label(self, name: str) -> str:
        """ "Germany (2020 hourly trace, repeated yearly)"."""
        r = self.regions[name]
        return f"{r.label or name} ({r.source})" if r.source else (r.label or name)


class RecordError(ValueError):
    """A meta record is present but not in the shape the run writes."""


def _floats(raw: Any, what: str) -> list[float]:
    if not isinstance(raw, list):
        raise RecordError(f"{what} is not a list")
    return [float(v) for v in raw]


def intensity_curves(meta: dict[str, str]) -> IntensityCurves | None:
    """The curves in ``meta`` (the ledger's meta table), or None where the run did not
    record them. Raises RecordError for a record that is there but malformed."""
    raw = meta.get(INTENSITY_KEY)
    if raw is None:
        return None
    try:
        d = json.loads(raw)
        t_s = _floats(d["t_s"], "t_s")
        regions = {
            str(name): RegionCurve(
                str(r.get("label") or name),
                str(r.get("source") or ""),
                _floats(r["ci_g_per_kwh"], f"{name}.ci_g_per_kwh"),
            )
            for name, r in d["regions"].items()
        }
        constant = d.get("constant_g_per_kwh")
        curves = IntensityCurves(
            start_utc=datetime.fromisoformat(d["start_utc"]),
            mode=str(d.get("mode", "auto")),
            constant_g_per_kwh=None if constant is None else float(constant),
            server_region=str(d["server_region"]),
            t_s=t_s,
            regions=regions,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RecordError(f"meta {INTENSITY_KEY} is malformed: {exc}") from None
    for name, r in regions.items():
        if len(r.ci_g_per_kwh) != len(t_s):
            raise RecordError(
                f"meta {INTENSITY_KEY}: {name} has {len(r.ci_g_per_kwh)} "
                f"values for {len(t_s)} times"
            )
    return curves


def population_groups(meta: dict[str, str]) -> dict[str, dict[str, int]] | None:
    """{"region": {name: clients}, "device": {name: clients}} over the whole population
    (clients never selected included), or None where the run did not record it."""
    raw = meta.get(GROUPS_KEY)
    if raw is None:
        return None
    try:
        d = json.loads(raw)
        return {
            str(column): {str(name): int(n) for name, n in counts.items()}
            for column, counts in d.items()
        }
    except (TypeError, ValueError, AttributeError) as exc:
        raise RecordError(f"meta {GROUPS_KEY} is malformed: {exc}") from None


SIGNAL_MEANING = {
    "average": "average: the grid mix's mean emissions per kWh",
    "marginal": "marginal: the emissions of the next kWh the grid supplies (WattTime's MOER)",
}


def carbon_sources(meta: dict[str, str]) -> str | None:
    """One sentence on where a live run's grid intensity came from (``fleet.ci_source``):
    the provider, which signal the carbon uses (average or marginal, never mixed up
    silently), and each region's zone or why it fell back to the built-in figures. None
    for a run on the built-in figures."""
    raw = meta.get(CI_SOURCES_KEY)
    if raw is None:
        return None
    try:
        rec = json.loads(raw)
        source, signal = str(rec["ci_source"]), str(rec["signal"])
        regions = dict(rec["regions"])
    except (ValueError, KeyError, TypeError) as exc:
        raise RecordError(f"meta {CI_SOURCES_KEY} is malformed: {exc}") from None
    parts = []
    for name, r in sorted(regions.items()):
        if r.get("source") == "builtin":
            parts.append(f"{name}: built-in figures ({r.get('reason', 'no reason recorded')})")
        else:
            parts.append(
                f"{name}: zone {r.get('zone')}, {r.get('signal')} signal, fetched "
                f"{r.get('fetched_utc')}"
            )
    if signal == "mixed":
        meaning = "mixed: regions differ, each named below (their grams do not add like for like)"
    else:
        meaning = SIGNAL_MEANING.get(signal, signal)
    return f"Grid intensity from {source}, signal {meaning}. " + "; ".join(parts) + "."
