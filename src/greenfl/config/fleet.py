"""The ``[fleet]`` section: which fleet file, when the simulated clock starts, who is
available, how rounds close, and which carbon-intensity curves the accounting uses."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from pydantic import Field, field_validator

from greenfl.config.base import Section


class FleetConfig(Section):
    catalog: str = Field(
        "builtin", description="builtin, or the path of a fleet file (TOML) that replaces it"
    )
    start_time: datetime = Field(
        default_factory=lambda: datetime(2026, 1, 15, 0, 0, tzinfo=timezone.utc),
        description="simulated clock start (ISO 8601; UTC when no offset is given)",
    )
    availability: Literal["always", "diurnal"] = Field(
        "always",
        description="always, or diurnal (devices free mostly at night, local time); under "
        "eligibility = production each device's schedule decides instead",
    )
    eligibility: Literal["any", "production"] = Field(
        "any",
        description="any: a device may train at any hour on any network (availability "
        "decides); production: only while idle, charging and on an unmetered network, by "
        "its class's daily schedule in local time, over its home network (Bonawitz et al. "
        "2019), with production round timing",
    )
    dropout_prob: float = Field(
        0.0, ge=0, le=1, description="chance that a selected client drops out part-way"
    )
    deadline_s: float | None = Field(
        None, gt=0, description="simulated seconds a round waits for updates; none: no deadline"
    )
    partial_work: Literal["aggregate", "drop"] = Field(
        "drop",
        description="aggregate: a client the deadline would cut off does the steps it can "
        "finish in time, and that update is aggregated (ledger status partial); drop: it "
        "straggles and its work is wasted",
    )
    over_selection: float = Field(
        0.0, ge=0, le=10, description="extra share of clients asked, the first k to finish kept"
    )
    network_energy: Literal["average", "marginal"] = Field(
        "average",
        description="average: each network's kWh/GB (energy over traffic); marginal: what one "
        "more GB adds, near zero for fixed networks whose power barely follows traffic",
    )
    embodied_allocation: Literal["active", "lifetime"] = Field(
        "active",
        description="active: a device's embodied carbon spread over its active seconds "
        "(lifetime x active_share); lifetime: over every second of its lifetime",
    )
    forecast_lag_h: float = Field(
        24.0,
        gt=0,
        le=24 * 7,
        description="the carbon-aware scheduler and selectors plan on a persistence "
        "forecast: the intensity this many hours before (24: the same hour yesterday); the "
        "accounting always uses the real curve",
    )
    checkin_window_s: float | None = Field(
        None,
        ge=0,
        description="selection phase: the window pace steering spreads the cohort's "
        "check-ins over; none: the eligibility's default (any 0, production 60)",
    )
    checkin_interval_s: float | None = Field(
        None,
        ge=0,
        description="the shortest time pace steering lets an eligible device wait between "
        "check-ins: with few eligible devices the selection phase lasts longer; none: the "
        "eligibility's default (any 0, production 600)",
    )
    selection_timeout_s: float | None = Field(
        None,
        ge=0,
        description="the selection phase ends after this even short of the goal count; "
        "none: the eligibility's default (any 0, production 600)",
    )
    configuration_s: float | None = Field(
        None,
        ge=0,
        description="configuration phase: the server sets up the round's aggregation and "
        "sends the plan; none: the eligibility's default (any 0, production 5)",
    )
    ci_mode: Literal["auto", "annual"] = Field(
        "auto", description="auto: each region's trace or hourly profile; annual: its annual mean"
    )
    ci_source: Literal["builtin", "electricitymaps", "watttime", "uk_eso"] = Field(
        "builtin",
        description="builtin: the fleet's own figures and traces; electricitymaps "
        "(average, ELECTRICITYMAPS_API_KEY), watttime (marginal MOER, WATTTIME_TOKEN or "
        "WATTTIME_USERNAME/WATTTIME_PASSWORD) or uk_eso (average, GB only, keyless): the "
        "provider's history and forecast per region, cached; built-in where it fails",
    )
    ci_constant_g_per_kwh: float | None = Field(
        None, ge=0, description="one carbon intensity (gCO2e/kWh) for every region"
    )

    @field_validator("start_time")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return v if v.tzinfo else v.replace(tzinfo=timezone.utc)
