"""Live grid carbon-intensity providers behind one Protocol: Electricity Maps (average
intensity per zone), WattTime (marginal emissions, MOER) and the UK's National Grid ESO
carbon intensity API (average, keyless, Great Britain only). Each client asks through an
injectable HTTP transport (tests hand it recorded responses; no test touches the network)
and answers points ``(UTC datetime, gCO2e/kWh)``, each value holding until the next point.

Response formats relied on (public API docs):
- Electricity Maps v3, https://static.electricitymaps.com/api/docs/index.html:
  ``/v3/carbon-intensity/history`` (last 24 h), ``/v3/carbon-intensity/past-range`` and
  ``/v3/carbon-intensity/forecast``: ``{zone, history|data|forecast: [{carbonIntensity,
  datetime}]}`` in gCO2eq/kWh, header ``auth-token``.
- WattTime v3, https://docs.watttime.org/: ``/login`` (basic auth, ``{token}``),
  ``/v3/historical`` and ``/v3/forecast`` with ``signal_type=co2_moer``: ``{data:
  [{point_time, value}], meta: {units: "lbs_co2_per_mwh", ...}}``.
- National Grid ESO, https://carbon-intensity.github.io/api-definitions/:
  ``/intensity/{from}/{to}`` and ``/intensity/{from}/fw48h``: ``{data: [{from, to,
  intensity: {forecast, actual, index}}]}`` in gCO2/kWh.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, Protocol

from greenfl.core.errors import GreenflError

Signal = Literal["average", "marginal"]
Point = tuple[datetime, float]

LBS_PER_MWH_TO_G_PER_KWH = 0.453592  # 1 lb = 453.592 g, 1 MWh = 1000 kWh
HTTP_TIMEOUT_S = 10.0

# Fleet region -> provider zone. Regions missing from a table fall back to the built-in
# figures (the run's meta says so).
ELECTRICITYMAPS_ZONES: dict[str, str] = {
    "NO": "NO-NO1",
    "SE": "SE-SE3",
    "FR": "FR",
    "BR": "BR-CS",
    "CA": "CA-ON",
    "GB": "GB",
    "US": "US-CAL-CISO",
    "DE": "DE",
    "JP": "JP-TK",
    "AU": "AU-NSW",
    "PL": "PL",
    "ZA": "ZA",
    "IN": "IN-NO",
}
WATTTIME_REGIONS: dict[str, str] = {
    "US": "CAISO_NORTH",
    "DE": "DE",
    "FR": "FR",
    "GB": "UK",
    "PL": "PL",
    "SE": "SE",
    "NO": "NO",
}
UK_ESO_ZONES: dict[str, str] = {"GB": "national"}


class GridSourceError(GreenflError):
    """A live carbon-intensity provider could not answer (unreachable, refused, no key)."""


class FreeTierLimit(GridSourceError):
    """Electricity Maps refused a second zone: its free tier serves one zone per key."""


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes


class HttpTransport(Protocol):
    def get(self, url: str, params: Mapping[str, str], headers: Mapping[str, str]) -> HttpResponse:
        """GET ``url`` with query ``params``; any HTTP status is answered, a failure to
        reach the host raises GridSourceError."""
        ...


class UrllibTransport:
    """The standard library's HTTP client (httpx is not a dependency)."""

    def __init__(self, timeout_s: float = HTTP_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s

    def get(self, url: str, params: Mapping[str, str], headers: Mapping[str, str]) -> HttpResponse:
        full = f"{url}?{urllib.parse.urlencode(dict(params))}" if params else url
        req = urllib.request.Request(full, headers=dict(headers), method="GET")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310
                return HttpResponse(resp.status, resp.read())
        except urllib.error.HTTPError as exc:
            return HttpResponse(exc.code, exc.read() or b"")
        except (urllib.error.URLError, OSError) as exc:
            raise GridSourceError(f"{url}: unreachable: {exc}") from None


class CarbonProvider(Protocol):
    name: str
    signal: Signal

    def zone(self, region: str) -> str | None:
        """The provider's zone for a fleet region; None where it has none."""
        ...

    def history(self, zone: str, start: datetime, end: datetime) -> list[Point]:
        """Recorded intensity over [start, end)."""
        ...

    def forecast(self, zone: str, start: datetime) -> list[Point]:
        """The provider's forecast from ``start`` (about now) on."""
        ...


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _when(text: str) -> datetime:
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _json(name: str, resp: HttpResponse, what: str) -> Any:  # noqa: ANN401
    if resp.status >= 500:
        raise GridSourceError(f"{name}: {what}: HTTP {resp.status} (provider error)")
    if resp.status >= 400:
        raise GridSourceError(f"{name}: {what}: HTTP {resp.status}: {resp.body[:200]!r}")
    try:
        return json.loads(resp.body)
    except ValueError as exc:
        raise GridSourceError(f"{name}: {what}: not JSON: {exc}") from None


def _in_window(points: list[Point], start: datetime, end: datetime | None) -> list[Point]:
    return sorted(p for p in points if p[0] >= start and (end is None or p[0] < end))


@dataclass
class ElectricityMaps:
    """Average (consumption-based, life-cycle) intensity per zone, gCO2eq/kWh."""

    transport: HttpTransport
    api_key: str | None = None
    base_url: str = "https://api.electricitymap.org/v3"
    now: datetime | None = None  # the clock for "last 24 h"; None: the wall clock
    name: str = "electricitymaps"
    signal: Signal = "average"
    _served: list[str] = field(default_factory=list)  # zones this key has answered

    @classmethod
    def from_env(cls, transport: HttpTransport) -> ElectricityMaps:
        return cls(transport, os.environ.get("ELECTRICITYMAPS_API_KEY"))

    def zone(self, region: str) -> str | None:
        return ELECTRICITYMAPS_ZONES.get(region)

    def _get(self, path: str, params: dict[str, str], zone: str) -> list[dict[str, Any]]:
        if not self.api_key:
            raise GridSourceError("electricitymaps: no API key: set ELECTRICITYMAPS_API_KEY")
        resp = self.transport.get(f"{self.base_url}{path}", params, {"auth-token": self.api_key})
        if resp.status in (401, 403) and self._served and zone not in self._served:
            raise FreeTierLimit(
                f"electricitymaps: zone {zone} refused (HTTP {resp.status}) after "
                f"{', '.join(self._served)} was served: the free tier allows one zone per "
                "API key"
            )
        body = _json(self.name, resp, f"{path} zone {zone}")
        rows = body.get("history") or body.get("data") or body.get("forecast")
        if not isinstance(rows, list):
            raise GridSourceError(f"electricitymaps: {path} zone {zone}: no data in answer")
        if zone not in self._served:
            self._served.append(zone)
        return rows

    def _points(self, rows: list[dict[str, Any]]) -> list[Point]:
        return [
            (_when(str(r["datetime"])), float(r["carbonIntensity"]))
            for r in rows
            if r.get("carbonIntensity") is not None  # a gap the zone did not estimate
        ]

    def history(self, zone: str, start: datetime, end: datetime) -> list[Point]:
        now = self.now or datetime.now(timezone.utc)
        if start >= now - timedelta(hours=24):  # the free tier's endpoint: the last 24 h
            rows = self._get("/carbon-intensity/history", {"zone": zone}, zone)
        else:
            params = {"zone": zone, "start": _iso(start), "end": _iso(end)}
            rows = self._get("/carbon-intensity/past-range", params, zone)
        return _in_window(self._points(rows), start, end)

    def forecast(self, zone: str, start: datetime) -> list[Point]:
        rows = self._get("/carbon-intensity/forecast", {"zone": zone}, zone)
        return _in_window(self._points(rows), start - timedelta(hours=1), None)


@dataclass
class WattTime:
    """Marginal operating emissions rate (MOER), converted from lbs CO2/MWh to g/kWh."""

    transport: HttpTransport
    username: str | None = None
    password: str | None = None
    token: str | None = None
    base_url: str = "https://api.watttime.org"
    name: str = "watttime"
    signal: Signal = "marginal"

    @classmethod
    def from_env(cls, transport: HttpTransport) -> WattTime:
        env = os.environ
        return cls(
            transport,
            env.get("WATTTIME_USERNAME"),
            env.get("WATTTIME_PASSWORD"),
            env.get("WATTTIME_TOKEN"),
        )

    def zone(self, region: str) -> str | None:
        return WATTTIME_REGIONS.get(region)

    def _token(self) -> str:
        if self.token:
            return self.token
        if not (self.username and self.password):
            raise GridSourceError(
                "watttime: no credentials: set WATTTIME_TOKEN, or WATTTIME_USERNAME and "
                "WATTTIME_PASSWORD"
            )
        basic = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        resp = self.transport.get(f"{self.base_url}/login", {}, {"Authorization": f"Basic {basic}"})
        self.token = str(_json(self.name, resp, "/login")["token"])
        return self.token

    def _points(self, path: str, params: dict[str, str]) -> list[Point]:
        headers = {"Authorization": f"Bearer {self._token()}"}
        body = _json(self.name, self.transport.get(f"{self.base_url}{path}", params, headers), path)
        units = str(body.get("meta", {}).get("units", ""))
        if units == "lbs_co2_per_mwh":
            scale = LBS_PER_MWH_TO_G_PER_KWH
        elif units in ("g_co2_per_kwh", "kg_co2_per_mwh"):  # the same quantity
            scale = 1.0
        else:
            raise GridSourceError(f"watttime: {path}: unknown units {units!r}")
        return [
            (_when(str(r["point_time"])), float(r["value"]) * scale) for r in body.get("data", [])
        ]

    def history(self, zone: str, start: datetime, end: datetime) -> list[Point]:
        params = {
            "region": zone,
            "start": _iso(start),
            "end": _iso(end),
            "signal_type": "co2_moer",
        }
        return _in_window(self._points("/v3/historical", params), start, end)

    def forecast(self, zone: str, start: datetime) -> list[Point]:
        params = {"region": zone, "signal_type": "co2_moer"}
        return _in_window(self._points("/v3/forecast", params), start - timedelta(hours=1), None)


@dataclass
class UkEso:
    """Great Britain's national average intensity (keyless): the measured ``actual`` where
    published, else ESO's own ``forecast`` for that half hour."""

    transport: HttpTransport
    base_url: str = "https://api.carbonintensity.org.uk"
    name: str = "uk_eso"
    signal: Signal = "average"

    @classmethod
    def from_env(cls, transport: HttpTransport) -> UkEso:
        return cls(transport)

    def zone(self, region: str) -> str | None:
        return UK_ESO_ZONES.get(region)

    def _points(self, path: str) -> list[Point]:
        body = _json(self.name, self.transport.get(f"{self.base_url}{path}", {}, {}), path)
        out: list[Point] = []
        for r in body.get("data", []):
            i = r.get("intensity", {})
            value = i.get("actual") if i.get("actual") is not None else i.get("forecast")
            if value is not None:
                out.append((_when(str(r["from"])), float(value)))
        return out

    def _stamp(self, t: datetime) -> str:
        return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%MZ")

    def history(self, zone: str, start: datetime, end: datetime) -> list[Point]:
        path = f"/intensity/{self._stamp(start)}/{self._stamp(end)}"
        return _in_window(self._points(path), start, end)

    def forecast(self, zone: str, start: datetime) -> list[Point]:
        # ESO answers from the half hour holding ``start``: kept, as the other providers'
        # last hour is; fetch_curve keeps only what follows the history
        points = self._points(f"/intensity/{self._stamp(start)}/fw48h")
        return _in_window(points, start - timedelta(hours=1), None)


SOURCES = ("electricitymaps", "watttime", "uk_eso")


def provider_for(source: str, transport: HttpTransport | None = None) -> CarbonProvider:
    """The client for ``source`` (a ``fleet.ci_source`` other than builtin), its keys from
    the environment."""
    t = transport if transport is not None else UrllibTransport()
    if source == "electricitymaps":
        return ElectricityMaps.from_env(t)
    if source == "watttime":
        return WattTime.from_env(t)
    if source == "uk_eso":
        return UkEso.from_env(t)
    raise GridSourceError(f"unknown carbon source {source!r}: one of {', '.join(SOURCES)}")
