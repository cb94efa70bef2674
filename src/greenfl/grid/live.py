"""A run's grid intensity from a live provider: each region's recorded history and the
provider's forecast over the run's window, cached on disk with their fetch time, as a
trace (a step function) per region. A region the provider cannot answer falls back to its
built-in curve; one warning names every such region, and the run's meta says which source
each region used and whether the signal is average or marginal."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from greenfl.accounting.sources import GridChoice, intensity_sources
from greenfl.fleet.catalog import Fleet
from greenfl.footprint.intensity import CarbonIntensity, RegionalIntensity, Trace
from greenfl.grid.providers import (
    CarbonProvider,
    GridSourceError,
    HttpTransport,
    Point,
    provider_for,
)

log = logging.getLogger("greenfl.grid")

LIVE_HORIZON_H = 48.0  # hours after the run's start that a live run fetches


def cache_dir() -> Path:
    """``$GREENFL_CI_CACHE``, else ``$XDG_CACHE_HOME/greenfl/ci``, else
    ``~/.cache/greenfl/ci``."""
    env = os.environ.get("GREENFL_CI_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "greenfl" / "ci"


@dataclass
class Fetched:
    points: list[Point]
    fetched_utc: datetime
    # where the curve turns from the provider's recorded history into its forecast (the
    # hour it was asked in); None for a plain history or forecast answer
    forecast_from_utc: datetime | None = None

    def forecast_from(self) -> datetime:
        """The hour the forecast part starts (a curve cached before this was recorded:
        the hour of its fetch)."""
        if self.forecast_from_utc is not None:
            return self.forecast_from_utc
        return self.fetched_utc.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


@dataclass
class CachedProvider:
    """A provider's answers kept on disk, keyed by source, zone, kind and window: a cached
    answer is never asked again (a forecast's key holds the hour it was asked in)."""

    provider: CarbonProvider
    folder: Path = field(default_factory=cache_dir)

    def _file(self, zone: str, kind: str, start: datetime, end: datetime | None) -> Path:
        window = f"{start:%Y%m%dT%H%M}-{end:%Y%m%dT%H%M}" if end else f"{start:%Y%m%dT%H}"
        safe_zone = hashlib.sha1(zone.encode()).hexdigest()[:6]  # zones may hold '/'
        return self.folder / f"{self.provider.name}_{safe_zone}_{kind}_{window}.json"

    def load(self, zone: str, kind: str, start: datetime, end: datetime | None) -> Fetched | None:
        path = self._file(zone, kind, start, end)
        if not path.is_file():
            return None
        try:
            raw = json.loads(path.read_text())
            since = raw.get("forecast_from_utc")
            return Fetched(
                [(datetime.fromisoformat(t), float(v)) for t, v in raw["points"]],
                datetime.fromisoformat(raw["fetched_utc"]),
                datetime.fromisoformat(since) if since else None,
            )
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("ignoring unreadable carbon cache file %s", path)
            return None

    def save(
        self, zone: str, kind: str, start: datetime, end: datetime | None, got: Fetched
    ) -> None:
        record = {
            "source": self.provider.name,
            "zone": zone,
            "kind": kind,
            "signal": self.provider.signal,
            "fetched_utc": got.fetched_utc.isoformat(),
            "forecast_from_utc": (
                got.forecast_from_utc.isoformat() if got.forecast_from_utc else None
            ),
            "points": [[t.isoformat(), v] for t, v in got.points],
        }
        path = self._file(zone, kind, start, end)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record))
        except OSError as exc:  # a read-only cache costs refetching, not the run
            log.warning("carbon cache not written (%s): %s", path, exc)

    def get(self, zone: str, kind: str, start: datetime, end: datetime | None) -> Fetched:
        got = self.load(zone, kind, start, end)
        if got is not None:
            return got
        if kind == "history" and end is not None:
            points = self.provider.history(zone, start, end)
        else:
            points = self.provider.forecast(zone, start)
        got = Fetched(points, datetime.now(timezone.utc))
        self.save(zone, kind, start, end, got)
        return got


def fetch_curve(
    cached: CachedProvider, zone: str, start: datetime, end: datetime, now: datetime
) -> Fetched:
    """The points over [start, end): history up to the hour that holds ``now``, the
    forecast after it. The merged curve is cached under the window itself: a rerun, a
    resume or ``fleet record`` of the same window reads what the first fetch saw, whenever
    it runs."""
    pinned = cached.load(zone, "curve", start, end)
    if pinned is not None:
        return pinned
    hour = now.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
    points: list[Point] = []
    fetched = now
    if start < hour:
        h = cached.get(zone, "history", start, min(end, hour))
        points += h.points
        fetched = h.fetched_utc
    if end > hour:
        f = cached.get(zone, "forecast", hour, None)
        last = points[-1][0] if points else start - timedelta(seconds=1)
        points += [p for p in f.points if last < p[0] < end]
        fetched = max(fetched, f.fetched_utc)
    if not points:
        raise GridSourceError(f"{cached.provider.name}: zone {zone}: no data for the window")
    got = Fetched(points, fetched, hour)
    cached.save(zone, "curve", start, end, got)
    return got


class LiveIntensity(RegionalIntensity):
    """The regions' sources, and what each one came from (``provenance``, for the meta)."""

    def __init__(
        self,
        sources: Sequence[CarbonIntensity],
        provenance: dict[str, Any],
        names: Sequence[str] = (),
    ) -> None:
        super().__init__(sources)
        self.provenance = provenance
        self.names = tuple(names)  # the regions, in fleet order

    def row_sources(self) -> dict[str, str]:
        return {name: str(r["source"]) for name, r in self.provenance.get("regions", {}).items()}

    def forecast_issued_s(self, start_utc: datetime) -> list[float]:
        """Per region, seconds from ``start_utc`` to where its provider's forecast starts;
        inf for a region on built-in figures (its planners see persistence only)."""
        regions = self.provenance.get("regions", {})
        out = []
        for name in self.names:
            since = regions.get(name, {}).get("forecast_from_utc")
            t = datetime.fromisoformat(since) if since else None
            out.append((t - start_utc).total_seconds() if t is not None else float("inf"))
        return out


_warned: set[str] = set()  # warn once per process for the same fallback


def live_sources(
    fleet: Fleet,
    grid: GridChoice,
    start_utc: datetime,
    source: str,
    regions: Sequence[str],
    lag_h: float,
    *,
    transport: HttpTransport | None = None,
    now: datetime | None = None,
    folder: Path | None = None,
) -> LiveIntensity:
    """One source per fleet region: the provider's curve over [start - lag_h, start +
    LIVE_HORIZON_H] for each of ``regions`` (the lag: the persistence forecast looks back),
    the built-in curve for the others and wherever the provider fails."""
    builtin = intensity_sources(fleet, grid, start_utc)
    provider = provider_for(source, transport)
    cached = CachedProvider(provider, folder or cache_dir())
    now = now or datetime.now(timezone.utc)
    t0 = start_utc - timedelta(hours=lag_h)
    t1 = start_utc + timedelta(hours=LIVE_HORIZON_H)
    sources: list[CarbonIntensity] = []
    used: dict[str, dict[str, Any]] = {}
    failed: list[str] = []
    for i, r in enumerate(fleet.regions):
        zone = provider.zone(r.name)
        if r.name not in regions:
            sources.append(builtin[i])
            continue
        if zone is None:
            reason = f"{source} has no zone for region {r.name}"
        else:
            try:
                got = fetch_curve(cached, zone, t0, t1, now)
            except GridSourceError as exc:
                reason = str(exc)
            else:
                stamps = np.array([t.timestamp() for t, _ in got.points])
                values = np.array([v for _, v in got.points])
                sources.append(Trace(stamps, values, start_utc))
                used[r.name] = {
                    "source": source,
                    "zone": zone,
                    "signal": provider.signal,
                    "fetched_utc": got.fetched_utc.isoformat(),
                    # planners see the provider's forecast from here on, history before
                    "forecast_from_utc": got.forecast_from().isoformat(),
                }
                continue
        sources.append(builtin[i])
        used[r.name] = {"source": "builtin", "signal": "average", "reason": reason}
        failed.append(f"{r.name} ({reason})")
    if failed:
        message = f"{source}: built-in carbon figures used for " + "; ".join(failed)
        if message not in _warned:
            _warned.add(message)
            log.warning(message)
    signals = sorted({u["signal"] for u in used.values()})
    provenance = {
        "ci_source": source,
        "signal": signals[0] if len(signals) == 1 else "mixed",
        "regions": used,
    }
    return LiveIntensity(sources, provenance, [r.name for r in fleet.regions])


def record_trace(
    source: str,
    regions: Sequence[str],
    start_utc: datetime,
    hours: float,
    *,
    transport: HttpTransport | None = None,
    now: datetime | None = None,
    folder: Path | None = None,
) -> dict[str, list[Point]]:
    """Each region's points over [start, start + hours), fetched as a live run fetches them
    (through the same cache): a trace of them replays what the run saw."""
    provider = provider_for(source, transport)
    cached = CachedProvider(provider, folder or cache_dir())
    now = now or datetime.now(timezone.utc)
    end = start_utc + timedelta(hours=hours)
    out: dict[str, list[Point]] = {}
    for name in regions:
        zone = provider.zone(name)
        if zone is None:
            raise GridSourceError(f"{source} has no zone for region {name}")
        out[name] = fetch_curve(cached, zone, start_utc, end, now).points
    return out


def write_trace(path: Path, points: Sequence[Point]) -> None:
    """The trace file format: ``timestamp,ci_g_per_kwh``, one row per point, UTC."""
    lines = ["timestamp,ci_g_per_kwh"]
    lines += [
        f"{t.astimezone(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')},{v!r}" for t, v in points
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
