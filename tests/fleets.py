"""Small fleet files for policy tests, built from parts."""

from __future__ import annotations

from pathlib import Path

DEVICE = """
[[device]]
name = "{name}"
flops_per_s = {flops_per_s}
active_power_w = {power_w}
idle_power_w = 0.5
embodied_kg = {embodied_kg}
lifetime_years = 3.0
active_share = 0.25
source = "test"
{targets}
"""

TARGET = """
[[device.targets]]
name = "{name}"
flops_per_s = {flops_per_s}
active_power_w = {power_w}
source = "test"
"""

NETWORK = """
[[network]]
name = "net"
up_mbps = 8.0
down_mbps = 16.0
radio_power_w = 1.0
network_kwh_per_gb = 0.01
source = "test"
"""

REGION = """
[[region]]
name = "{name}"
ci_g_per_kwh = {ci}
utc_offset_h = 0
source = "test"
{extra}
"""

SERVER = """
[server]
power_w = 100.0
idle_power_w = {idle_w}
pue = 1.5
region = "{region}"
mode = "{mode}"
source = "test"
"""

ENTRY = """
[[population]]
device = "{device}"
network = "net"
region = "{region}"
share = {share}
"""


def write_fleet(
    path: Path,
    devices: list[dict],
    regions: list[dict],
    entries: list[dict],
    server_region: str,
    server_idle_w: float = 20.0,
    server_mode: str = "dedicated",
) -> Path:
    parts = []
    for d in devices:
        targets = "".join(TARGET.format(**t) for t in d.get("targets", []))
        parts.append(
            DEVICE.format(
                name=d["name"],
                flops_per_s=d.get("flops_per_s", 1e9),
                power_w=d.get("power_w", 2.0),
                embodied_kg=d.get("embodied_kg", 50.0),
                targets=targets,
            )
        )
    parts.append(NETWORK)
    for r in regions:
        parts.append(REGION.format(name=r["name"], ci=r["ci"], extra=r.get("extra", "")))
    parts.append(SERVER.format(idle_w=server_idle_w, region=server_region, mode=server_mode))
    for e in entries:
        parts.append(ENTRY.format(**e))
    path.write_text("".join(parts))
    return path
