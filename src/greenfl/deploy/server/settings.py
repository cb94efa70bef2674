"""What the server side of a deployment needs of a run: its limits and waits, read once from
the run's config by ``greenfl.deploy.server.serve`` (``settings_of``), so that nothing else
here reads the config."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeploySettings:
    """The ``deploy`` section, resolved, and what clients are told of the run. No defaults:
    the config's are the only ones."""

    seed: int  # the run's seed, sent with each task: clients seed their training from it
    config_json: str  # the run's config, sent at Join: clients build their model from it
    round_timeout_s: float  # deploy.round_timeout_s, or fleet.deadline_s where sooner
    join_timeout_s: float
    min_clients: int
    early_close: bool
    keepalive_s: float
    max_message_bytes: int
    max_update_norm: float | None
    max_client_samples: int | None
    per_client_tokens: bool  # deploy.auth = "per_client": a token admits its own id only
    join_rate_per_s: float
    plausibility_factor: float
    norm_bound_factor: float | None
    sample_bound_factor: float | None
    quarantine_rounds: int
