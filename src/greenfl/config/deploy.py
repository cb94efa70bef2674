"""The ``[deploy]`` section: limits and waits of a real deployment (``greenfl serve``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from greenfl.config.base import Section

WEEK_S = 7 * 86_400.0


class DeployConfig(Section):
    """`greenfl serve`: limits and waits of a real deployment over gRPC."""

    max_update_norm: float | None = Field(None, gt=0, description="reject larger L2 updates")
    max_message_mb: float = Field(64.0, gt=0, description="largest update message, 1e6 bytes")
    # Upper bounds: a wait longer than a week is a typo, and asyncio/gRPC deadlines overflow
    # past about 9.2e9 s (issue 29).
    round_timeout_s: float = Field(
        300.0, gt=0, le=WEEK_S, description="wall seconds a round waits (at most a week)"
    )
    min_clients: int = Field(1, ge=1, description="connected clients before the first round")
    join_timeout_s: float = Field(
        600.0, gt=0, le=WEEK_S, description="how long to wait for min_clients (at most a week)"
    )
    keepalive_s: float = Field(
        5.0, gt=0, le=3600, description="idle seconds between keep-alive tasks (at most 1 h)"
    )
    early_close: bool = Field(True, description="close a round once k updates are accepted")
    max_client_samples: int | None = Field(
        1_000_000,
        ge=1,
        description="refuse clients declaring more local samples (--data-dir); none: no cap",
    )
    auth: Literal["per_client", "shared"] = Field(
        "per_client",
        description="per_client: each client joins with its own token (greenfl serve "
        "--issue-token ID), bound to its id; shared: every client presents --token-file's",
    )
    join_rate_per_s: float = Field(
        20.0, gt=0, description="joins admitted per second on average (bursts of 100)"
    )
    plausibility_factor: float = Field(
        10.0,
        gt=1,
        description="reject an update whose reported FLOPs, compute seconds or energy lie "
        "outside this factor of the server's model of the client's round",
    )
    norm_bound_factor: float | None = Field(
        10.0,
        gt=1,
        description="reject an update whose L2 norm exceeds this multiple of the round's "
        "median (3+ updates); none: off",
    )
    sample_bound_factor: float | None = Field(
        10.0,
        gt=1,
        description="cap an update's weight at this multiple of the round's median samples "
        "(3+ updates); none: off",
    )
    quarantine_rounds: int = Field(
        5,
        ge=0,
        description="rounds a client sits out after 2 rejected or timed-out tasks in a row",
    )
