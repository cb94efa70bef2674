"""Pieces of the run report's HTML: number cells, tables, and the fleet a run used."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Any


def num(v: float | int | None, digits: int = 4) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, int):
        return f"{v:,}"
    return "n/a" if not math.isfinite(v) else f"{v:.{digits}g}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], numeric: set[int]) -> str:
    head = "".join(
        f'<th class="num">{escape(h)}</th>' if i in numeric else f"<th>{escape(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{escape(str(c))}</td>'
            if i in numeric
            else f"<td>{escape(str(c))}</td>"
            for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def fleet_html(fleet: dict[str, Any]) -> str:
    parts = []
    devs = fleet.get("device", [])
    parts.append(
        "<h4>Devices</h4>"
        + table(
            (
                "name",
                "FLOP/s",
                "active W",
                "idle W",
                "embodied kg",
                "lifetime y",
                "active share",
                "source",
            ),
            [
                (
                    d["name"],
                    num(d["flops_per_s"], 3),
                    d["active_power_w"],
                    d["idle_power_w"],
                    d["embodied_kg"],
                    d["lifetime_years"],
                    d["active_share"],
                    d["source"],
                )
                for d in devs
            ],
            {1, 2, 3, 4, 5, 6},
        )
    )
    parts.append(
        "<h4>Networks</h4>"
        + table(
            ("name", "up Mbit/s", "down Mbit/s", "radio W", "kWh/GB", "source"),
            [
                (
                    n["name"],
                    n["up_mbps"],
                    n["down_mbps"],
                    n["radio_power_w"],
                    n["network_kwh_per_gb"],
                    n["source"],
                )
                for n in fleet.get("network", [])
            ],
            {1, 2, 3, 4},
        )
    )
    parts.append(
        "<h4>Grid regions</h4>"
        + table(
            ("name", "label", "gCO2e/kWh (annual)", "UTC offset h", "curve", "source"),
            [
                (
                    r["name"],
                    r.get("label", ""),
                    r["ci_g_per_kwh"],
                    r.get("utc_offset_h", 0),
                    "trace" if r.get("trace") else ("hourly" if r.get("hourly") else "annual"),
                    r["source"],
                )
                for r in fleet.get("region", [])
            ],
            {2, 3},
        )
    )
    srv = fleet.get("server", {})
    parts.append(
        "<h4>Server</h4>"
        + table(
            ("power W", "idle W", "PUE", "region", "source"),
            [
                (
                    srv.get("power_w"),
                    srv.get("idle_power_w"),
                    srv.get("pue"),
                    srv.get("region"),
                    srv.get("source"),
                )
            ],
            {0, 1, 2},
        )
    )
    parts.append(
        "<h4>Population</h4>"
        + table(
            ("device", "network", "region", "target", "share"),
            [
                (p["device"], p["network"], p["region"], p.get("target") or "-", p["share"])
                for p in fleet.get("population", [])
            ],
            {4},
        )
    )
    return "".join(parts)
