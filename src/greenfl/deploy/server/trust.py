"""What the server checks of its clients beyond the update itself (docs/trust.md): the
``deploy`` keys of enrolment, claims, peers, replay, tokens and join rates, resolved once.

``DeploySettings`` (built by ``serve.settings_of``) carries the run's resolved config as JSON
for the clients; these keys are read from it here, so that the servicer gets them without a
second path from the config. Every key is present: the JSON is ``RunConfig``'s own dump."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TrustSettings:
    self_described: bool  # deploy.self_described
    enrolment_file: Path | None  # deploy.enrolment_file
    claim_tolerance: float  # deploy.claim_tolerance
    peer_outlier_mads: float  # deploy.peer_outlier_mads
    replay_distance: float  # deploy.replay_distance
    run_id: str  # deploy.run_id: the run tokens must be bound to ("" none)
    revocation_file: Path | None  # deploy.revocation_file
    join_rate_per_client_per_s: float  # deploy.join_rate_per_client_per_s


def trust_settings(config_json: str) -> TrustSettings:
    """The trust keys of the run whose resolved config is ``config_json``."""
    d = json.loads(config_json)["deploy"]
    return TrustSettings(
        self_described=bool(d["self_described"]),
        enrolment_file=_path(d["enrolment_file"]),
        claim_tolerance=float(d["claim_tolerance"]),
        peer_outlier_mads=float(d["peer_outlier_mads"]),
        replay_distance=float(d["replay_distance"]),
        run_id=str(d["run_id"]),
        revocation_file=_path(d["revocation_file"]),
        join_rate_per_client_per_s=float(d["join_rate_per_client_per_s"]),
    )


def _path(value: str | None) -> Path | None:
    return None if value is None else Path(value)
