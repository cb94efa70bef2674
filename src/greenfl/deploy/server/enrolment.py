"""Who each client is, as the operator enrolled it: its device, network and region (and at
most how many local samples it may declare). A client is enrolled by the fleet's own
assignment, by an enrolment file (``deploy.enrolment_file``) or by its token (``greenfl
serve --issue-token ID --device ... --network ... --region ...``), the later ones winning.

A client that names another device than its enrolment's is refused, unless the operator
allows self-described clients (``deploy.self_described``); it is then accounted as what it
names and flagged on every ledger row (the ``reason`` column). See docs/trust.md."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from greenfl.core.errors import ConfigError
from greenfl.core.files import parse_toml, read_text
from greenfl.deploy.security import TokenClaims
from greenfl.deploy.server.sessions import Refusal
from greenfl.fleet.catalog import Fleet
from greenfl.fleet.population import Population


@dataclass(frozen=True)
class Enrolment:
    """One client's enrolment: its population entry's names, where it came from (fleet,
    file, token) and the most local samples it may declare (None: deploy's cap only)."""

    device: str
    network: str
    region: str
    source: str
    max_samples: int | None = None

    def describe(self) -> str:
        return f"{self.device} on {self.network} in {self.region} (by the {self.source})"


@dataclass(frozen=True)
class Admission:
    """How a joining client is accounted: its population entry, its enrolment, and the
    flag its ledger rows carry when it described itself (None otherwise)."""

    entry: int
    enrolment: Enrolment
    flag: str | None = None


def entry_of(fleet: Fleet, device: str, network: str, region: str, where: str) -> int:
    """The fleet's population entry with exactly these names, or ConfigError naming
    ``where`` the names came from."""
    for i, e in enumerate(fleet.population):
        if (e.device, e.network, e.region) == (device, network, region):
            return i
    combos = sorted({f"{e.device}/{e.network}/{e.region}" for e in fleet.population})
    shown = ", ".join(combos[:12]) + (" ..." if len(combos) > 12 else "")
    raise ConfigError(
        f"{where}: the fleet has no population entry {device}/{network}/{region} "
        f"(device/network/region; it has {shown})"
    )


def read_enrolment_file(path: Path, fleet: Fleet) -> dict[int, Enrolment]:
    """The enrolments of an enrolment file: a TOML list of ``[[client]]`` tables, each with
    ``id``, ``device``, ``network``, ``region`` and optionally ``samples``. Every triple must
    be one of the fleet's population entries."""
    where = f"deploy.enrolment_file {path}"
    data = parse_toml(read_text(path, where, ConfigError), where, ConfigError)
    clients = data.get("client")
    if not isinstance(clients, list) or set(data) != {"client"}:
        raise ConfigError(f"{where}: expected only [[client]] tables")
    out: dict[int, Enrolment] = {}
    keys = {"id", "device", "network", "region", "samples"}
    for i, c in enumerate(clients):
        at = f"{where} client #{i + 1}"
        if not isinstance(c, dict) or not {"id", "device", "network", "region"} <= set(c):
            raise ConfigError(f"{at}: needs id, device, network and region")
        if set(c) - keys:
            raise ConfigError(f"{at}: unknown key(s) {', '.join(sorted(set(c) - keys))}")
        cid, samples = c["id"], c.get("samples")
        if not isinstance(cid, int) or isinstance(cid, bool) or cid < 0:
            raise ConfigError(f"{at}: id {cid!r} is not a client id (an integer >= 0)")
        if samples is not None and (not isinstance(samples, int) or samples < 1):
            raise ConfigError(f"{at}: samples {samples!r} is not a positive integer")
        if cid in out:
            raise ConfigError(f"{at}: client {cid} is enrolled twice")
        names = [c[k] for k in ("device", "network", "region")]
        if not all(isinstance(n, str) for n in names):
            raise ConfigError(f"{at}: device, network and region are names (strings)")
        entry_of(fleet, *names, at)
        out[cid] = Enrolment(*names, source="enrolment file", max_samples=samples)
    return out


class Enrolments:
    """The enrolments of a run's clients, and the admission of a joining one."""

    def __init__(
        self, population: Population, listed: dict[int, Enrolment], self_described: bool
    ) -> None:
        self.population = population
        self.listed = listed
        self.self_described = self_described
        # The fleet's own assignment, as the run started (joins later move pop.entry).
        self._fleet_entry = population.entry.copy()

    @classmethod
    def of(cls, population: Population, path: Path | None, self_described: bool) -> Enrolments:
        listed = {} if path is None else read_enrolment_file(path, population.fleet)
        out = [cid for cid in listed if cid >= population.size]
        if out:
            raise ConfigError(
                f"deploy.enrolment_file {path}: client id {min(out)} is out of range "
                f"0..{population.size - 1} (data.num_clients = {population.size})"
            )
        return cls(population, listed, self_described)

    def listed_entries(self) -> dict[int, int]:
        """The population entry of each client the enrolment file names."""
        fleet = self.population.fleet
        return {
            cid: entry_of(fleet, e.device, e.network, e.region, "deploy.enrolment_file")
            for cid, e in self.listed.items()
        }

    def enrolment(self, cid: int, claims: TokenClaims | None) -> Enrolment:
        """Client ``cid``'s enrolment: its token's, the enrolment file's, or the fleet's."""
        if claims is not None and claims.enrolled:
            listed = self.listed.get(cid)
            cap = listed.max_samples if listed is not None else None
            return Enrolment(claims.device, claims.network, claims.region, "token", cap)
        listed = self.listed.get(cid)
        if listed is not None:
            return listed
        fleet = self.population.fleet
        e = fleet.population[int(self._fleet_entry[cid])]
        return Enrolment(e.device, e.network, e.region, "fleet")

    def admit(
        self, cid: int, claims: TokenClaims | None, device: str, declared_samples: int
    ) -> Admission:
        """How client ``cid`` is accounted if it joins naming ``device`` ("" none) and
        declaring ``declared_samples`` local samples (0: its partition); Refusal if its
        claims disagree with its enrolment."""
        enrolled = self.enrolment(cid, claims)
        fleet = self.population.fleet
        try:
            entry = entry_of(fleet, enrolled.device, enrolled.network, enrolled.region, "token")
        except ConfigError as exc:
            raise Refusal(
                grpc.StatusCode.PERMISSION_DENIED,
                f"client {cid} is enrolled as {enrolled.describe()}, which this server's "
                "fleet does not have; ask the operator to enrol it again",
                str(exc),
            ) from None
        cap = enrolled.max_samples
        if cap is not None and declared_samples > cap:
            raise Refusal(
                grpc.StatusCode.PERMISSION_DENIED,
                f"client {cid} declares {declared_samples} local samples; it is enrolled "
                f"with at most {cap}",
                f"declared {declared_samples} samples, enrolled {cap}",
            )
        if not device or device == enrolled.device:
            return Admission(entry, enrolled)
        if not self.self_described:
            raise Refusal(
                grpc.StatusCode.PERMISSION_DENIED,
                f"client {cid} is enrolled as {enrolled.describe()}; it claims device "
                f"{device!r}: refused (deploy.self_described = false; join without --device, "
                "or ask the operator to enrol it as that device)",
                f"claims device {device!r}, enrolled {enrolled.device!r}",
            )
        flag = f"self-described: claims device {device}, enrolled as {enrolled.device}"
        return Admission(self_described_entry(self.population, entry, device), enrolled, flag)


def self_described_entry(pop: Population, enrolled_entry: int, device: str) -> int:
    """The population entry of a client accounted as ``device`` (self-described): one with
    that device that keeps its enrolled region (and network) where the fleet has one."""
    fleet = pop.fleet
    current = fleet.population[enrolled_entry]
    options = [i for i, e in enumerate(fleet.population) if e.device == device]
    return min(
        options,
        key=lambda i: (
            fleet.population[i].region != current.region,
            fleet.population[i].network != current.network,
        ),
    )
