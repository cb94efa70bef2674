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
    # 100,000: above any built-in dataset's whole training set (CIFAR-10 50,000, MNIST
    # 60,000), so one client may hold all of one; below issue 29's liar's 1,000,000, which
    # the old default admitted (a fleet of data centres sets it higher, or none).
    max_client_samples: int | None = Field(
        100_000,
        ge=1,
        description="refuse clients declaring more local samples (--data-dir); none: no cap",
    )
    auth: Literal["per_client", "shared"] = Field(
        "per_client",
        description="per_client: each client joins with its own token (greenfl serve "
        "--issue-token ID), bound to its id; shared: every client presents --token-file's",
    )
    join_rate_per_s: float = Field(
        20.0,
        gt=0,
        description="joins admitted per second from one source address, on average (bursts "
        "of 100); counted after the token is checked, so a flood of bad tokens spends none",
    )
    join_rate_per_client_per_s: float = Field(
        0.2,
        gt=0,
        description="joins admitted per second for one client id, on average (bursts of 5)",
    )
    self_described: bool = Field(
        False,
        description="admit a client that names another device than the one it is enrolled "
        "with (accounted as what it names, flagged in the ledger's reason); false: refuse it",
    )
    enrolment_file: str | None = Field(
        None,
        description="TOML file enrolling client ids with device, network, region (and "
        "samples); none: the fleet's assignment and the tokens' enrolment",
    )
    claim_tolerance: float = Field(
        3.0,
        gt=1,
        description="a reported energy outside this factor of the server's estimate (enrolled "
        "device, observed wall time) is disputed: the ledger uses the estimate (docs/trust.md)",
    )
    peer_outlier_mads: float = Field(
        6.0,
        gt=0,
        description="flag a client whose energy per estimate, or wall seconds per sample, lies "
        "this many scaled MADs from its device class's median (disputed; twice: quarantined)",
    )
    replay_distance: float = Field(
        1e-3,
        ge=0,
        lt=1,
        description="refuse an update within this relative L2 distance of the client's "
        "previous one or of another client's in the round (a replay); 0: identical only",
    )
    run_id: str = Field(
        "",
        max_length=64,
        description="the run per-client tokens are bound to (greenfl serve sets it from "
        "the run folder's run_id file); empty: tokens bound to a run are refused",
    )
    revocation_file: str | None = Field(
        None,
        description="revoked client tokens (greenfl serve --revoke-token; greenfl serve sets "
        "it to the run folder's revoked_tokens.txt); none: no revocations",
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
        description="rounds a client sits out after 2 tasks in a row rejected, timed out, or "
        "disputed as an outlier or for its data",
    )
