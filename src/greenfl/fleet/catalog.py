"""Loading and validating a fleet file (TOML); the built-in catalog is such a file."""

from __future__ import annotations

from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from greenfl.core.errors import FleetError
from greenfl.core.files import parse_toml, read_text
from greenfl.fleet.profiles import (
    DeviceProfile,
    NetworkProfile,
    PopulationEntry,
    Region,
    Schedule,
    ServerProfile,
)
from greenfl.fleet.schedules import BUILTIN_SCHEDULES

BUILTIN = "builtin"


class _FleetFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    device: list[DeviceProfile] = Field(min_length=1)
    network: list[NetworkProfile] = Field(min_length=1)
    region: list[Region] = Field(min_length=1)
    server: ServerProfile
    population: list[PopulationEntry] = Field(min_length=1)
    schedule: list[Schedule] = Field(default_factory=list)


@dataclass(frozen=True)
class Fleet:
    devices: tuple[DeviceProfile, ...]
    networks: tuple[NetworkProfile, ...]
    regions: tuple[Region, ...]
    server: ServerProfile
    population: tuple[PopulationEntry, ...]
    path: str
    # The eligibility schedules the devices name: the built-in ones, and the fleet file's
    # (which replace a built-in one of the same name).
    schedules: tuple[Schedule, ...] = BUILTIN_SCHEDULES

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

    def schedule(self, name: str) -> Schedule:
        for s in self.schedules:
            if s.name == name:
                return s
        raise KeyError(f"no eligibility schedule {name!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "device": [d.model_dump() for d in self.devices],
            "network": [n.model_dump() for n in self.networks],
            "region": [r.model_dump() for r in self.regions],
            "server": self.server.model_dump(),
            "population": [p.model_dump() for p in self.population],
            "schedule": [s.model_dump() for s in self.schedules],
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


def _names(raw: dict[str, Any], kind: str) -> list[str]:
    items = raw.get(kind)
    if not isinstance(items, list):
        return []
    return [x["name"] for x in items if isinstance(x, dict) and isinstance(x.get("name"), str)]


def _references(raw: dict[str, Any]) -> list[str]:
    """Cross-reference problems, read from the raw mapping so they are found even when
    some entries fail their own checks: every problem is reported in one go."""
    problems: list[str] = []
    for kind in ("device", "network", "region"):
        names = _names(raw, kind)
        for dup in sorted({n for n in names if names.count(n) > 1}):
            problems.append(f"{kind}: duplicate name {dup!r}")
    targets: dict[str, list[str]] = {}
    for d in raw.get("device", []) if isinstance(raw.get("device"), list) else []:
        if isinstance(d, dict) and isinstance(d.get("name"), str):
            ts = d.get("targets", [])
            targets[d["name"]] = (
                [t.get("name") for t in ts if isinstance(t, dict)] if isinstance(ts, list) else []
            )
    networks, regions = set(_names(raw, "network")), set(_names(raw, "region"))
    schedules = {s.name for s in BUILTIN_SCHEDULES} | set(_names(raw, "schedule"))
    for i, d in enumerate(raw.get("device", []) if isinstance(raw.get("device"), list) else []):
        if isinstance(d, dict) and isinstance(d.get("schedule"), str):
            if d["schedule"] not in schedules:
                problems.append(f"device[{i}].schedule: unknown schedule {d['schedule']!r}")
    metered = (
        {
            n["name"]: bool(n.get("metered", False))
            for n in raw.get("network", [])
            if isinstance(n, dict) and isinstance(n.get("name"), str)
        }
        if isinstance(raw.get("network"), list)
        else {}
    )
    server = raw.get("server")
    if isinstance(server, dict) and isinstance(server.get("region"), str):
        if server["region"] not in regions:
            problems.append(f"server.region: unknown region {server['region']!r}")
    population = raw.get("population")
    for i, p in enumerate(population if isinstance(population, list) else []):
        if not isinstance(p, dict):
            continue
        where = f"population[{i}]"
        dev, target = p.get("device"), p.get("target")
        if isinstance(dev, str) and dev not in targets:
            problems.append(f"{where}.device: unknown device {dev!r}")
        elif isinstance(dev, str) and isinstance(target, str) and target not in targets[dev]:
            problems.append(f"{where}.target: device {dev!r} has no target {target!r}")
        for key, known in (("network", networks), ("region", regions)):
            if isinstance(p.get(key), str) and p[key] not in known:
                problems.append(f"{where}.{key}: unknown {key} {p[key]!r}")
        home = p.get("home_network")
        if isinstance(home, str) and home not in networks:
            problems.append(f"{where}.home_network: unknown network {home!r}")
        elif isinstance(home, str) and metered.get(home):
            problems.append(f"{where}.home_network: {home!r} is metered")
    return problems


def parse_fleet(raw: dict[str, Any], path: str) -> Fleet:
    """Validate a parsed fleet mapping; a FleetError lists every problem found."""
    problems: list[str] = []
    f: _FleetFile | None = None
    try:
        f = _FleetFile.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            msg = "missing key" if err["type"] == "missing" else err["msg"]
            msg = "unknown key" if err["type"] == "extra_forbidden" else msg
            problems.append(f"{_label(raw, err['loc'])}: {msg.removeprefix('Value error, ')}")
    problems += [p for p in _references(raw) if p not in problems]
    if problems or f is None:
        raise FleetError(f"{path}: " + "; ".join(problems), problems)
    own = {s.name for s in f.schedule}
    return Fleet(
        devices=tuple(f.device),
        networks=tuple(f.network),
        regions=tuple(f.region),
        server=f.server,
        population=tuple(f.population),
        path=path,
        schedules=tuple(s for s in BUILTIN_SCHEDULES if s.name not in own) + tuple(f.schedule),
    )


def load_fleet(catalog: str | Path = BUILTIN) -> Fleet:
    """The built-in catalog, or a user's fleet file that replaces it."""
    if str(catalog) == BUILTIN:
        folder = resources.files("greenfl.fleet").joinpath("catalog")
        text = folder.joinpath("builtin.toml").read_text()
        path = BUILTIN
        base = Path(str(folder))  # its traces/ ship beside it, in the installed package
    else:
        p = Path(catalog)
        text = read_text(p, "fleet file", FleetError)
        path = str(p)
        base = p.parent
    raw = parse_toml(text, path, FleetError)
    fleet = parse_fleet(raw, path)
    if base is not None:
        # Trace files are relative to the fleet file, so a fleet folder can be moved whole.
        regions = tuple(
            r.model_copy(update={"trace": str((base / r.trace).resolve())}) if r.trace else r
            for r in fleet.regions
        )
        fleet = replace(fleet, regions=regions)
    return fleet
