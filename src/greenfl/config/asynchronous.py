"""The ``[async]`` section (issue 30): asynchronous FL, ``engine.mode = "async"``. Up to
``concurrency`` clients train at once, each from the model current when it was dispatched;
the server applies their updates as the strategy says (FedBuff: every ``buffer_size``;
FedAsync: each on arrival), each weighed by its staleness."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from greenfl.config.base import Section


class AsyncConfig(Section):
    key = "async"

    concurrency: int = Field(
        100, ge=1, le=10_000_000, description="clients training at once, at most"
    )
    buffer_size: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="updates per server step; none: 10 (FedBuff's K in Nguyen et al. 2022), "
        "1 for fedasync (each update mixed in on arrival; it takes no other)",
    )
    staleness: Literal["constant", "polynomial", "hinge"] = Field(
        "polynomial",
        description="how an update is down-weighted by its staleness tau (server steps since "
        "its base): constant 1; polynomial (1 + tau)^-a; hinge 1 up to tau = b, then "
        "1 / (a (tau - b) + 1)",
    )
    staleness_a: float = Field(0.5, ge=0, le=100, description="the exponent or slope a")
    staleness_b: float = Field(4.0, ge=0, le=1e6, description="the hinge's knee b")
    carbon_aware: bool = Field(
        False,
        description="throttle dispatch by the forecast intensity of the candidates' grids: a "
        "free slot goes to a client whose grid is near the lowest it will be in the next "
        "carbon_slack_s and among the cleaner of those checked in now, else waits "
        "(docs/async.md)",
    )
    carbon_slack_s: float = Field(
        3600.0,
        ge=0,
        le=1e7,
        description="carbon_aware: how far ahead a client's grid forecast is compared",
    )
    carbon_tolerance: float = Field(
        0.05,
        ge=0,
        le=10,
        description="carbon_aware: a grid within this share above its lowest forecast "
        "intensity over the slack counts as clean now",
    )
    carbon_quantile: float = Field(
        0.5,
        ge=0,
        le=1,
        description="carbon_aware: and a grid at most this quantile of the intensities of "
        "the clients checked in now (1: no preference of place)",
    )
    min_concurrency_share: float = Field(
        0.25,
        ge=0,
        le=1,
        description="carbon_aware: this share of concurrency stays in flight whatever the "
        "grids, picked as without the throttle, so the run keeps moving and every region "
        "keeps a share",
    )
    checkin_interval_s: float = Field(
        60.0,
        gt=0,
        le=86_400,
        description="simulation: who is eligible is drawn again at most this often "
        "(simulated s); a freed slot is filled from the last draw",
    )
    max_candidates: int = Field(
        10_000,
        ge=1,
        le=100_000_000,
        description="simulation: a free slot is filled from at most this many eligible "
        "clients, a random pool of them when more are eligible (a server sees the devices "
        "checking in, not the whole population; it keeps a million-client run fast)",
    )
    wake_s: float = Field(
        900.0,
        gt=0,
        le=86_400,
        description="carbon_aware: with slots left free, look at the grids again after this "
        "long (simulated s) if no update arrives first",
    )


EngineMode = Literal["sync", "async"]
