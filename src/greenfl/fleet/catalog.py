"""Loading and validating a fleet file (TOML); the built-in catalog is such a file."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from greenfl.core.errors import FleetError
from greenfl.fleet.profiles import (
    DeviceProfile,
    NetworkProfile,
    PopulationEntry,
    Region,
    ServerProfile,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BUILTIN = "builtin"


class _FleetFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    device: list[DeviceProfile] = Field(min_length=1)
    network: list[NetworkProfile] = Field(min_length=1)
    region: list[Region] = Field(min_length=1)
    server: ServerProfile
    population: list[PopulationEntry] = Field(min_length=1)


@dataclass(frozen=True)
class Fleet:
    devices: tuple[DeviceProfile, ...]
    networks: tuple[NetworkProfile, ...]
    regions: tuple[Region, ...]
    server: ServerProfile
    population: tuple[PopulationEntry, ...]
    path: str

    @property
    def device_names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.devices)

    @property
    def network_names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.networks)

    @property
    def region_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.regions)

    def device_index(self, name: str) -> int:
        return self.device_names.index(name)

    def network_index(self, name: str) -> int:
        return self.network_names.index(name)

    def region_index(self, name: str) -> int:
        return self.region_names.index(name)

    def region(self, name: str) -> Region:
        return self.regions[self.region_index(name)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "device": [d.model_dump() for d in self.devices],
            "network": [n.model_dump() for n in self.networks],
            "region": [r.model_dump() for r in self.regions],
            "server": self.server.model_dump(),
            "population": [p.model_dump() for p in self.population],
        }


def _label(raw: dict[str, Any], loc: tuple[Any, ...]) -> str:
    """'device[2] (rpi4).active_power_w' rather than pydantic's bare tuple."""
    parts: list[str] = []
    node: Any = raw
    for p in loc:
        if isinstance(p, int) and parts and isinstance(node, list) and p < len(node):
            node = node[p]
            name = node.get("name") if isinstance(node, dict) else None
            parts[-1] += f"[{p}]" + (f" ({name})" if isinstance(name, str) else "")
        else:
            parts.append(str(p))
            node = node.get(p, {}) if isinstance(node, dict) else {}
    return ".".join(parts)


def _references(f: _FleetFile) -> list[str]:
    problems: list[str] = []
    for kind, items in (("device", f.device), ("network", f.network), ("region", f.region)):
        names = [x.name for x in items]
        for dup in sorted({n for n in names if names.count(n) > 1}):
            problems.append(f"{kind}: duplicate name {dup!r}")
    devices = {d.name: d for d in f.device}
    networks = {n.name for n in f.network}
    regions = {r.name for r in f.region}
    if f.server.region not in regions:
        problems.append(f"server.region: unknown region {f.server.region!r}")
    for i, p in enumerate(f.population):
        where = f"population[{i}]"
        if p.device not in devices:
            problems.append(f"{where}.device: unknown device {p.device!r}")
        elif p.target is not None and p.target not in [t.name for t in devices[p.device].targets]:
            problems.append(f"{where}.target: device {p.device!r} has no target {p.target!r}")
        if p.network not in networks:
            problems.append(f"{where}.network: unknown network {p.network!r}")
        if p.region not in regions:
            problems.append(f"{where}.region: unknown region {p.region!r}")
    return problems


def parse_fleet(raw: dict[str, Any], path: str) -> Fleet:
    """Validate a parsed fleet mapping; a FleetError lists every problem found."""
    try:
        f = _FleetFile.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = "missing key" if err["type"] == "missing" else err["msg"]
            msg = "unknown key" if err["type"] == "extra_forbidden" else msg
            problems.append(f"{_label(raw, err['loc'])}: {msg.removeprefix('Value error, ')}")
        raise FleetError(f"{path}: " + "; ".join(problems), problems) from None
    problems = _references(f)
    if problems:
        raise FleetError(f"{path}: " + "; ".join(problems), problems)
    return Fleet(
        devices=tuple(f.device),
        networks=tuple(f.network),
        regions=tuple(f.region),
        server=f.server,
        population=tuple(f.population),
        path=path,
    )


def load_fleet(catalog: str | Path = BUILTIN) -> Fleet:
    """The built-in catalog, or a user's fleet file that replaces it."""
    if str(catalog) == BUILTIN:
        text = resources.files("greenfl.fleet").joinpath("catalog/builtin.toml").read_text()
        path = BUILTIN
        base = None
    else:
        p = Path(catalog)
        if not p.is_file():
            raise FleetError(f"fleet file not found: {p}")
        text = p.read_text(encoding="utf-8")
        path = str(p)
        base = p.parent
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FleetError(f"{path}: invalid TOML: {exc}") from None
    fleet = parse_fleet(raw, path)
    if base is not None:
        # Trace files are relative to the fleet file, so a fleet folder can be moved whole.
        regions = tuple(
            r.model_copy(update={"trace": str((base / r.trace).resolve())}) if r.trace else r
            for r in fleet.regions
        )
        fleet = Fleet(
            fleet.devices, fleet.networks, regions, fleet.server, fleet.population, fleet.path
        )
    return fleet
