"""The run config's section base and its strategy, engine, deployment, compression,
scheduling, adaptation and report sections (greenfl.config holds the others and RunConfig, and
re-exports these)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def check_name(kind: str, value: str, names: list[str]) -> str:
    if value not in names:
        raise ValueError(f"unknown {kind} {value!r}; choose one of {', '.join(sorted(names))}")
    return value


class StrategyConfig(Section):
    name: str = Field("fedavg", description="aggregation strategy by registry name")
    mu: float = Field(0.01, ge=0, description="FedProx proximal weight")
    server_lr: float | None = Field(
        None,
        gt=0,
        description="server step size; none: the strategy's own default "
        "(fedadam and fedadagrad 0.1, fedyogi 0.01, fedavgm 1.0)",
    )
    server_momentum: float = Field(0.9, ge=0, lt=1, description="FedAvgM")
    beta1: float = Field(0.9, ge=0, lt=1, description="FedOpt: first-moment decay")
    beta2: float = Field(0.99, ge=0, lt=1, description="FedOpt: second-moment decay")
    tau: float = Field(1e-3, gt=0, description="FedOpt adaptivity")
    trim_fraction: float = Field(0.1, ge=0, lt=0.5, description="trimmed_mean: cut per side")
    byzantine: int | None = Field(
        None,
        ge=0,
        le=100_000,
        description="robust strategies: Byzantine updates per round to tolerate (f); none: "
        "the expected attackers in a cohort, ceil(attack.fraction x clients_per_round); a "
        "strategy that cannot tolerate f at clients_per_round is refused",
    )
    multikrum_selected: int | None = Field(
        None, ge=1, description="multikrum: updates averaged (none: n - f)"
    )
    clip_norm: float = Field(1.0, gt=0, le=1e6, description="clip: L2 bound of each update")
    clip_noise_std: float = Field(
        0.0, ge=0, le=1e6, description="clip: std of the Gaussian noise added to the mean"
    )
    centered_clip_radius: float = Field(
        1.0, gt=0, le=1e6, description="centered_clip: clipping radius around the centre"
    )
    centered_clip_iterations: int = Field(
        3, ge=1, le=1000, description="centered_clip: clipping iterations per round"
    )
    geomedian_iterations: int = Field(
        10, ge=1, le=10_000, description="geomedian: most Weiszfeld iterations per round"
    )

    @field_validator("name")
    @classmethod
    def _known_strategy(cls, v: str) -> str:
        from greenfl.strategy import STRATEGIES

        return check_name("strategy", v, list(STRATEGIES))


class EngineConfig(Section):
    trainer: Literal["auto", "sequential", "vectorised"] = Field(
        "auto",
        description="auto: vectorised for supported models of <= 1M parameters and cohorts "
        "of >= 8 clients",
    )
    vectorised_threads: int = Field(
        0,
        ge=0,
        description="intra-op threads of the vectorised trainer; 0 = torch's setting "
        "(all cores); 1 on a machine shared with other work",
    )
    backend: Literal["local", "ray"] = Field(
        "local", description="local (this process) or ray (a Ray cluster)"
    )
    ray_address: str | None = Field(None, description="an existing Ray cluster; none: local Ray")
    checkpoint: bool = Field(True, description="persist server state with each round's rows")
    server_meter: Literal["model", "measured"] = Field(
        "model",
        description="simulation: the server's time from its counted FLOPs (model: repeatable) "
        "or measured on this host (varies with its load; flagged server_measured in the "
        "ledger); a deployment always measures",
    )
    accounting: bool = Field(
        True, description="footprint accounting and ledger rows; off only to measure overhead"
    )
    ledger_batch_s: float = Field(
        0.25,
        ge=0,
        description="simulation: hand rounds to the ledger writer at most this often (wall s); "
        "a crash loses at most this much, which a resumed run re-runs; 0 = every round",
    )


class DeployConfig(Section):
    """`greenfl serve`: limits and waits of a real deployment over gRPC."""

    max_update_norm: float | None = Field(None, gt=0, description="reject larger L2 updates")
    max_message_mb: float = Field(64.0, gt=0, description="largest update message, 1e6 bytes")
    round_timeout_s: float = Field(300.0, gt=0, description="wall seconds a round waits")
    min_clients: int = Field(1, ge=1, description="connected clients before the first round")
    join_timeout_s: float = Field(600.0, gt=0, description="how long to wait for min_clients")
    keepalive_s: float = Field(5.0, gt=0, description="idle seconds between keep-alive tasks")
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


class CompressionConfig(Section):
    name: str = Field(
        "identity", description="update codec by registry name (identity, q8, q4, topk)"
    )
    topk_ratio: float = Field(0.1, gt=0, le=1, description="topk: share of the coordinates sent")
    chunk_size: int = Field(1024, ge=1, description="q8, q4: elements per quantisation chunk")

    @field_validator("name")
    @classmethod
    def _known_codec(cls, v: str) -> str:
        from greenfl.compression import CODECS

        return check_name("codec", v, list(CODECS))


class SchedulingConfig(Section):
    name: Literal["none", "carbon"] = Field(
        "none", description="none, or carbon (wait for a lower-carbon window)"
    )
    slack_s: float = Field(3600.0, ge=0, description="carbon: longest wait before a round")
    step_s: float = Field(900.0, gt=0, description="carbon: spacing of candidate start times")
    max_total_wait_s: float | None = Field(None, ge=0, description="carbon: wait budget per run")


class AdaptConfig(Section):
    name: Literal["none", "ucb", "thompson", "pooled"] = Field(
        "none",
        description="bandit over round parameters: none, ucb, thompson, or pooled (Thompson "
        "on gain per round shared across arms, per expected gCO2e; no round-robin start)",
    )
    clients_per_round: list[int] = Field(default_factory=list, description="arms; [] = train's")
    local_epochs: list[int] = Field(default_factory=list, description="arms; [] = train's")
    batch_size: list[int] = Field(default_factory=list, description="arms; [] = train's")
    exploration: float = Field(1.0, ge=0, description="ucb: confidence width")
    prior_rounds: float = Field(
        5.0, gt=0, description="pooled: rounds' worth of weight on the mean gain of all rounds"
    )
    gain_sd: float = Field(
        0.25, gt=0, description="pooled: spread of one round's gain (share of error removed)"
    )
    target: Literal["entry", "fastest", "energy", "carbon"] = Field(
        "entry", description="execution target per device: the population entry's, or chosen"
    )

    @field_validator("clients_per_round", "local_epochs", "batch_size")
    @classmethod
    def _positive_arms(cls, v: list[int]) -> list[int]:
        if any(x < 1 for x in v):
            raise ValueError("every arm value must be >= 1")
        return v


class EvalConfig(Section):
    every: int = Field(
        1,
        ge=0,
        description="evaluate on clients' own test data every this many rounds (0: never)",
    )
    clients: int = Field(
        100,
        ge=1,
        description="clients in that evaluation: a fixed seeded sample, the same every round",
    )
    max_samples: int = Field(
        0,
        ge=0,
        description="at most this many test samples per evaluated client, a fixed seeded "
        "subset (0: all of them); bounds the cost of evaluating large models",
    )


class ReportConfig(Section):
    html: bool = Field(True, description="greenfl run writes report.html into its --out folder")
    tensorboard_dir: str | None = Field(
        None, min_length=1, description="log per-round metrics to TensorBoard here"
    )
    mlflow: bool = Field(False, description="log per-round metrics to MLflow")
    mlflow_experiment: str = Field("greenfl", min_length=1, description="MLflow experiment name")
    mlflow_tracking_uri: str | None = Field(
        None, min_length=1, description="MLflow tracking server; none: MLflow's default"
    )
