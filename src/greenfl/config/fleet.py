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
        "always", description="always, or diurnal (devices free mostly at night, local time)"
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
    ci_mode: Literal["auto", "annual"] = Field(
        "auto", description="auto: each region's trace or hourly profile; annual: its annual mean"
    )
    ci_constant_g_per_kwh: float | None = Field(
        None, ge=0, description="one carbon intensity (gCO2e/kWh) for every region"
    )

    @field_validator("start_time")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return v if v.tzinfo else v.replace(tzinfo=timezone.utc)
