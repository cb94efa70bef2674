"""Live grid carbon sources (fleet.ci_source): each provider's real response format parsed
and converted by hand, zone mapping, the on-disk cache, the fallback to built-in figures
with one warning, Electricity Maps' free-tier message, and ``greenfl fleet record``'s trace
replaying what a live run saw. Every answer comes from recorded responses through a
transport double: no test touches the network."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from greenfl.accounting.sources import GridChoice, intensity_sources
from greenfl.cli import app
from greenfl.config.fleet import FleetConfig
from greenfl.fleet.catalog import load_fleet
from greenfl.footprint.intensity import Trace
from greenfl.grid import live, providers
from greenfl.grid.live import CachedProvider, live_sources, record_trace, write_trace
from greenfl.grid.providers import (
    ElectricityMaps,
    FreeTierLimit,
    GridSourceError,
    HttpResponse,
    UkEso,
    WattTime,
)

FIX = Path(__file__).parent / "fixtures" / "ci_sources"
UTC = timezone.utc


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Recorded:
    """The transport double: answers a GET whose URL holds a route's key (the query
    parameters are recorded, not matched) with that route's status and fixture file; an
    unknown URL, or ``down``, is a host that cannot be reached."""

    def __init__(self, routes: dict[str, tuple[int, str]], down: bool = False) -> None:
        self.routes = routes
        self.down = down
        self.calls: list[tuple[str, dict[str, str], dict[str, str]]] = []

    def get(self, url: str, params: Mapping[str, str], headers: Mapping[str, str]) -> HttpResponse:
        self.calls.append((url, dict(params), dict(headers)))
        for suffix, (status, name) in self.routes.items():
            if suffix in url and not self.down:
                return HttpResponse(status, (FIX / name).read_bytes() if name else b"")
        raise GridSourceError(f"{url}: unreachable (recorded transport)")


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GREENFL_CI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(live, "_warned", set())
    for key in ("ELECTRICITYMAPS_API_KEY", "WATTTIME_USERNAME", "WATTTIME_PASSWORD"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("WATTTIME_TOKEN", raising=False)


def test_electricitymaps_history_and_forecast_parsed_as_recorded() -> None:
    t = Recorded(
        {
            "/carbon-intensity/history": (200, "em_history_DE.json"),
            "/carbon-intensity/forecast": (200, "em_forecast_DE.json"),
        }
    )
    em = ElectricityMaps(t, "key-1", now=at("2026-01-15T03:00:00"))
    got = em.history("DE", at("2026-01-14T22:00:00"), at("2026-01-15T03:00:00"))
    # the 01:00 hour has carbonIntensity null: skipped, 00:00's value holds on
    assert got == [
        (at("2026-01-14T22:00:00"), 402.0),
        (at("2026-01-14T23:00:00"), 388.0),
        (at("2026-01-15T00:00:00"), 371.0),
        (at("2026-01-15T02:00:00"), 355.0),
    ]
    url, params, headers = t.calls[0]
    assert url == "https://api.electricitymap.org/v3/carbon-intensity/history"
    assert params == {"zone": "DE"} and headers == {"auth-token": "key-1"}
    fc = em.forecast("DE", at("2026-01-15T03:00:00"))
    assert [v for _, v in fc] == [350.0, 362.0, 380.0]


def test_electricitymaps_older_window_asks_past_range() -> None:
    t = Recorded({"/carbon-intensity/past-range": (200, "em_history_DE.json")})
    em = ElectricityMaps(t, "key-1", now=at("2026-02-01T00:00:00"))
    em.history("DE", at("2026-01-14T22:00:00"), at("2026-01-15T00:00:00"))
    assert t.calls[0][1] == {
        "zone": "DE",
        "start": "2026-01-14T22:00:00Z",
        "end": "2026-01-15T00:00:00Z",
    }


def test_watttime_moer_converted_from_lbs_per_mwh() -> None:
    t = Recorded(
        {
            "/login": (200, "wt_login.json"),
            "/v3/historical": (200, "wt_historical_CAISO_NORTH.json"),
            "/v3/forecast": (200, "wt_forecast_CAISO_NORTH.json"),
        }
    )
    wt = WattTime(t, "ann", "secret")
    got = wt.history("CAISO_NORTH", at("2026-01-15T00:00:00"), at("2026-01-15T00:15:00"))
    # 1 lb/MWh = 453.592 g / 1000 kWh = 0.453592 g/kWh
    assert [v for _, v in got] == pytest.approx([408.2328, 453.592, 362.8736], rel=1e-12)
    assert got[1][0] == at("2026-01-15T00:05:00")
    login_headers = t.calls[0][2]
    assert login_headers["Authorization"] == "Basic " + base64.b64encode(b"ann:secret").decode()
    url, params, headers = t.calls[1]
    assert headers["Authorization"] == "Bearer recorded-token-abc"
    assert params["signal_type"] == "co2_moer" and params["region"] == "CAISO_NORTH"
    fc = wt.forecast("CAISO_NORTH", at("2026-01-15T00:15:00"))
    assert [v for _, v in fc] == pytest.approx([317.5144, 294.8348], rel=1e-12)
    assert len(t.calls) == 3  # the token is asked for once
    assert wt.signal == "marginal"


def test_uk_eso_takes_actual_else_forecast() -> None:
    t = Recorded(
        {
            "/intensity/2026-01-14T22:00Z/2026-01-14T23:30Z": (200, "eso_intensity.json"),
            "/fw48h": (200, "eso_fw48h.json"),
        }
    )
    eso = UkEso(t)
    got = eso.history("national", at("2026-01-14T22:00:00"), at("2026-01-14T23:30:00"))
    assert got == [
        (at("2026-01-14T22:00:00"), 184.0),
        (at("2026-01-14T22:30:00"), 176.0),
        (at("2026-01-14T23:00:00"), 170.0),  # actual null: ESO's forecast
    ]
    assert t.calls[0][2] == {}  # keyless
    fc = eso.forecast("national", at("2026-01-14T23:30:00"))
    assert fc == [(at("2026-01-14T23:30:00"), 160.0), (at("2026-01-15T00:00:00"), 150.0)]


def test_zone_tables() -> None:
    t = Recorded({})
    em, wt, eso = ElectricityMaps(t), WattTime(t), UkEso(t)
    assert (em.zone("DE"), em.zone("GB"), em.zone("US")) == ("DE", "GB", "US-CAL-CISO")
    assert (wt.zone("US"), wt.zone("GB")) == ("CAISO_NORTH", "UK")
    assert (eso.zone("GB"), eso.zone("DE")) == ("national", None)
    assert em.zone("CN") is None  # not served: the region falls back


def test_cache_hit_asks_once_and_keeps_fetch_time(tmp_path: Path) -> None:
    t = Recorded({"/intensity/2026-01-14T22:00Z/2026-01-14T23:30Z": (200, "eso_intensity.json")})
    cached = CachedProvider(UkEso(t), tmp_path / "c")
    a = cached.get("national", "history", at("2026-01-14T22:00:00"), at("2026-01-14T23:30:00"))
    b = cached.get("national", "history", at("2026-01-14T22:00:00"), at("2026-01-14T23:30:00"))
    assert len(t.calls) == 1
    assert a.points == b.points and a.fetched_utc == b.fetched_utc
    (saved,) = (tmp_path / "c").iterdir()
    raw = json.loads(saved.read_text())
    assert raw["source"] == "uk_eso" and raw["signal"] == "average" and raw["fetched_utc"]


def _eso_routes() -> dict[str, tuple[int, str]]:
    """A run starting 2026-01-15T00:00Z with a 2 h lag, asked at its start: history over
    [22:00, 00:00), then ESO's 48 h forecast from 00:00."""
    return {
        "/intensity/2026-01-14T22:00Z/2026-01-15T00:00Z": (200, "eso_intensity.json"),
        "/intensity/2026-01-15T00:00Z/fw48h": (200, "eso_fw48h.json"),
    }


def test_live_run_uses_provider_where_it_answers_and_falls_back_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fleet = load_fleet()
    start = at("2026-01-15T00:00:00")
    t = Recorded(_eso_routes())
    kw = {"transport": t, "now": start}
    with caplog.at_level(logging.WARNING, logger="greenfl.grid"):
        src = live_sources(fleet, GridChoice(), start, "uk_eso", ["DE", "GB"], 2.0, **kw)
        live_sources(fleet, GridChoice(), start, "uk_eso", ["DE", "GB"], 2.0, **kw)
    warnings = [r for r in caplog.records if r.name == "greenfl.grid"]
    assert len(warnings) == 1 and "DE" in warnings[0].getMessage()
    regions = src.provenance["regions"]
    assert regions["GB"]["source"] == "uk_eso" and regions["GB"]["signal"] == "average"
    assert regions["DE"]["source"] == "builtin" and "no zone" in regions["DE"]["reason"]
    gb, de = fleet.region_index("GB"), fleet.region_index("DE")
    # history: 22:30Z 176, 23:00Z 170 (ESO's forecast where no actual); then the 48 h
    # forecast: 23:30Z 160, 00:00Z 150, held on after its last point
    got = src.mean(np.array([gb, gb]), np.array([-5400.0, -5400.0]), np.array([-1800.0, 3600.0]))
    expected = [(176 + 170) / 2, (176 * 1800 + 170 * 1800 + 160 * 1800 + 150 * 3600) / 9000]
    assert got == pytest.approx(expected, rel=1e-12)
    assert len(t.calls) == 2  # the second run read the cache
    builtin = intensity_sources(fleet, GridChoice(), start)
    assert src.mean(np.array([de]), 0.0, 3600.0) == pytest.approx(
        builtin.mean(np.array([de]), 0.0, 3600.0)
    )


def test_unreachable_or_5xx_provider_falls_back_to_builtin() -> None:
    fleet = load_fleet()
    start = at("2026-01-15T00:00:00")
    builtin = intensity_sources(fleet, GridChoice(), start)
    gb = fleet.region_index("GB")
    for t in (Recorded(_eso_routes(), down=True), Recorded({"/intensity/": (503, "")})):
        src = live_sources(
            fleet, GridChoice(), start, "uk_eso", ["GB"], 2.0, transport=t, now=start
        )
        assert src.provenance["regions"]["GB"]["source"] == "builtin"
        assert src.mean(np.array([gb]), 0.0, 7200.0) == pytest.approx(
            builtin.mean(np.array([gb]), 0.0, 7200.0)
        )
    # no key is a fallback too, naming the variable
    src = live_sources(
        fleet, GridChoice(), start, "electricitymaps", ["DE"], 2.0, transport=Recorded({})
    )
    assert "ELECTRICITYMAPS_API_KEY" in src.provenance["regions"]["DE"]["reason"]


def test_free_tier_second_zone_named() -> None:
    t = Recorded(
        {
            "/carbon-intensity/history": (200, "em_history_DE.json"),
            "/carbon-intensity/forecast": (200, "em_forecast_DE.json"),
        }
    )
    em = ElectricityMaps(t, "key-1", now=at("2026-01-15T03:00:00"))
    em.history("DE", at("2026-01-14T22:00:00"), at("2026-01-15T03:00:00"))
    t.routes = {"/carbon-intensity/history": (401, "em_401.json")}
    with pytest.raises(FreeTierLimit, match="free tier allows one zone per API key") as exc:
        em.history("GB", at("2026-01-14T22:00:00"), at("2026-01-15T03:00:00"))
    assert "zone GB" in str(exc.value) and "\n" not in str(exc.value)
    # the first zone refused is a plain key problem, not the free-tier limit
    fresh = ElectricityMaps(t, "key-1", now=at("2026-01-15T03:00:00"))
    with pytest.raises(GridSourceError) as plain:
        fresh.history("GB", at("2026-01-14T22:00:00"), at("2026-01-15T03:00:00"))
    assert not isinstance(plain.value, FreeTierLimit)


def test_record_trace_replays_what_the_live_run_saw(tmp_path: Path) -> None:
    fleet = load_fleet()
    start = at("2026-01-15T00:00:00")
    t = Recorded(_eso_routes())
    seen = live_sources(fleet, GridChoice(), start, "uk_eso", ["GB"], 2.0, transport=t, now=start)
    # the run's whole window: the persistence lag (2 h) before the start, 48 h after it
    t0_rec = at("2026-01-14T22:00:00")
    curves = record_trace("uk_eso", ["GB"], t0_rec, 50.0, transport=t, now=start)
    assert [v for _, v in curves["GB"]] == [184.0, 176.0, 170.0, 160.0, 150.0]
    path = tmp_path / "GB-live.csv"
    write_trace(path, curves["GB"])
    gb = fleet.region_index("GB")
    replay_fleet = load_fleet()
    regions = tuple(
        # a recorded trace is a plain trace: no trace_year (that one repeats a whole year)
        r.model_copy(update={"trace": str(path), "trace_year": None}) if r.name == "GB" else r
        for r in replay_fleet.regions
    )
    from dataclasses import replace

    replayed = intensity_sources(replace(replay_fleet, regions=regions), GridChoice(), start)
    t0 = np.array([-7200.0, -6000.0, -3600.0, -100.0, 7200.0])
    t1 = np.array([-5400.0, -1000.0, 0.0, 3600.0, 9000.0])
    region = np.full(5, gb)
    assert replayed.mean(region, t0, t1) == pytest.approx(seen.mean(region, t0, t1), rel=1e-12)
    assert isinstance(replayed[gb], Trace)


def test_fleet_record_cli_writes_trace_and_refuses_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = Recorded(_eso_routes())
    monkeypatch.setattr(providers, "UrllibTransport", lambda: t)
    out = tmp_path / "rec.csv"
    args = ["fleet", "record", "--source", "uk_eso", "--regions", "GB"]
    window = ["--start", "2026-01-14T22:00:00Z", "--hours", "2", "--out", str(out)]
    result = CliRunner().invoke(app, args + window)
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines() == [
        "timestamp,ci_g_per_kwh",
        "2026-01-14T22:00:00Z,184.0",
        "2026-01-14T22:30:00Z,176.0",
        "2026-01-14T23:00:00Z,170.0",
    ]
    for bad, needle in (
        (["--source", "nope"], "--source"),
        (["--regions", " , "], "--regions"),
        (["--start", "yesterday"], "--start"),
        (["--hours", "0"], "--hours"),
        (["--regions", "DE"], "no zone for region DE"),
    ):
        argv = list(args + window)
        i = argv.index(bad[0])
        argv[i + 1] = bad[1]
        result = CliRunner().invoke(app, argv)
        assert result.exit_code == 2, (bad, result.output)
        assert needle in result.output and len(result.output.strip().splitlines()) == 1


def test_fleet_config_ci_source_contract() -> None:
    assert FleetConfig().ci_source == "builtin"
    assert FleetConfig(ci_source="watttime").ci_source == "watttime"
    with pytest.raises(ValidationError):
        FleetConfig(ci_source="carbonapi")


def test_run_with_live_source_marks_each_region_in_meta(
    tiny_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole run under fleet.ci_source = uk_eso: GB's curve comes from ESO (recorded),
    every other region with clients falls back, and the ledger's meta says which."""
    from greenfl.api import run
    from tests.ledger_sql import rows

    t = Recorded({"/intensity/": (200, "eso_intensity.json")})
    monkeypatch.setattr(providers, "UrllibTransport", lambda: t)
    cfg = tiny_config.model_copy(
        update={"fleet": tiny_config.fleet.model_copy(update={"ci_source": "uk_eso"})}
    )
    run(cfg, tmp_path / "run")
    ((raw,),) = rows(tmp_path / "run", "SELECT value FROM meta WHERE key = 'ci_sources'")
    meta = json.loads(raw)
    assert meta["ci_source"] == "uk_eso" and meta["signal"] == "average"
    assert meta["regions"]["GB"]["source"] == "uk_eso"
    assert meta["regions"]["GB"]["zone"] == "national"
    others = [r for name, r in meta["regions"].items() if name != "GB"]
    assert others and all(r["source"] == "builtin" for r in others)
    assert len(t.calls) == 1  # one region asked, once
    # every row names its own source, by its region
    pairs = rows(tmp_path / "run", "SELECT DISTINCT region, ci_source FROM client_rounds")
    assert pairs and all(src == ("uk_eso" if reg == "GB" else "builtin") for reg, src in pairs)
    verified = CliRunner().invoke(app, ["verify", str(tmp_path / "run")])
    assert verified.exit_code == 0, verified.output


def test_a_later_rerun_or_resume_reads_the_pinned_curve() -> None:
    """The first fetch of a run's window is pinned: the same window asked a day later, with
    the provider down, gives the same curve and no fallback (resume stays repeatable)."""
    fleet = load_fleet()
    start = at("2026-01-15T00:00:00")
    gb = fleet.region_index("GB")
    first = live_sources(
        fleet,
        GridChoice(),
        start,
        "uk_eso",
        ["GB"],
        2.0,
        transport=Recorded(_eso_routes()),
        now=start,
    )
    down = Recorded(_eso_routes(), down=True)
    later = live_sources(
        fleet,
        GridChoice(),
        start,
        "uk_eso",
        ["GB"],
        2.0,
        transport=down,
        now=at("2026-01-16T09:30:00"),
    )
    assert down.calls == [] and later.provenance["regions"]["GB"]["source"] == "uk_eso"
    t0, t1 = np.array([-7200.0, -600.0]), np.array([-3000.0, 5400.0])
    region = np.full(2, gb)
    assert later.mean(region, t0, t1) == pytest.approx(first.mean(region, t0, t1), rel=1e-12)


def test_planners_see_the_provider_forecast_after_its_issue_and_persistence_before() -> None:
    """ProviderForecast over hand-made hourly curves: from the hour the forecast was issued
    (t = 0) a planner sees the provider's curve; before it, the history lag_h earlier (it
    must not see recorded history ahead of time); a region on built-in figures (issued
    never) sees persistence throughout."""
    from greenfl.footprint.forecast import PersistenceForecast, ProviderForecast
    from greenfl.footprint.intensity import RegionalIntensity

    start = at("2026-01-15T00:00:00")
    hours = np.arange(-4, 4)
    stamps = start.timestamp() + hours * 3600.0
    live_curve = Trace(stamps, 100.0 * (hours + 5), start)  # -4h: 100 ... +3h: 800
    real = RegionalIntensity([live_curve, live_curve])
    fc = ProviderForecast(real, 2.0, [0.0, float("inf")])
    region = np.array([0, 0, 0, 1])
    t0 = np.array([3600.0, -3600.0, -1800.0, 3600.0])
    t1 = np.array([7200.0, 0.0, 1800.0, 7200.0])
    # by hand: [1h, 2h) is the forecast's 600; [-1h, 0) is persistence of [-3h, -2h): 200;
    # [-0.5h, 0.5h) is half persistence of [-2.5h, -2h) (200) and half forecast [0, 0.5h)
    # (500); the built-in region: persistence of [-1h, 0): 400
    assert fc.mean(region, t0, t1) == pytest.approx([600.0, 200.0, 350.0, 400.0], rel=1e-12)
    assert fc[0].mean(np.array([3600.0]), np.array([7200.0])) == pytest.approx([600.0])
    persistence = PersistenceForecast(real, 2.0)
    assert persistence.mean(region[:1], t0[:1], t1[:1]) == pytest.approx([400.0])


def test_a_live_run_plans_on_the_provider_forecast() -> None:
    """forecast_for under a live source: GB (ESO, fetched at the run's start) is planned on
    ESO's forecast from 00:00Z; DE (no ESO zone) on persistence of the built-in curve."""
    from greenfl.config.run import build_config
    from greenfl.factories.world import forecast_for
    from greenfl.footprint.forecast import PersistenceForecast, ProviderForecast

    fleet = load_fleet()
    start = at("2026-01-15T00:00:00")
    src = live_sources(
        fleet, GridChoice(), start, "uk_eso", ["DE", "GB"], 2.0,
        transport=Recorded(_eso_routes()), now=start,
    )
    cfg = build_config(
        {"fleet": {"start_time": "2026-01-15T00:00:00Z", "forecast_lag_h": 2.0,
                   "ci_source": "uk_eso"}}
    )
    fc = forecast_for(cfg, src)
    assert isinstance(fc, ProviderForecast)
    gb, de = fleet.region_index("GB"), fleet.region_index("DE")
    assert fc.issued_s[gb] == 0.0 and fc.issued_s[de] == float("inf")
    # ESO's forecast: 00:00Z 150, held on; persistence would give [22:00, 23:00)'s 180
    assert fc.mean(np.array([gb]), 0.0, 3600.0) == pytest.approx([150.0])
    assert PersistenceForecast(src, 2.0).mean(np.array([gb]), 0.0, 3600.0) == pytest.approx(
        [(184 + 176) / 2]
    )
    assert fc.mean(np.array([de]), 0.0, 3600.0) == pytest.approx(
        PersistenceForecast(src, 2.0).mean(np.array([de]), 0.0, 3600.0)
    )


def test_report_says_which_source_and_signal_the_carbon_uses() -> None:
    from greenfl.report.world import RecordError, carbon_sources

    meta = {
        "ci_sources": json.dumps(
            {
                "ci_source": "watttime",
                "signal": "marginal",
                "regions": {
                    "US": {"source": "watttime", "zone": "CAISO_NORTH", "signal": "marginal",
                           "fetched_utc": "2026-01-15T00:00:00+00:00"},
                    "DE": {"source": "builtin", "signal": "average",
                           "reason": "watttime has no zone for region DE"},
                },
            }
        )
    }
    text = carbon_sources(meta)
    assert text is not None
    assert "watttime" in text and "marginal: the emissions of the next kWh" in text
    assert "US: zone CAISO_NORTH, marginal signal" in text
    assert "DE: built-in figures (watttime has no zone for region DE)" in text
    assert carbon_sources({}) is None
    with pytest.raises(RecordError, match="ci_sources is malformed"):
        carbon_sources({"ci_sources": "{not json"})
