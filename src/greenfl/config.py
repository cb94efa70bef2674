"""RunConfig: the one place where a run's settings are declared and validated.

Precedence: built-in defaults < config file (TOML or YAML) < ``--set key=value`` overrides.
Unknown keys are errors so that a typo never passes silently.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from greenfl.config_data import DataConfig, ModelConfig
from greenfl.config_safety import AttackConfig, PrivacyConfig, SecAggConfig, check_safety
from greenfl.config_sections import (
    AdaptConfig,
    CompressionConfig,
    DeployConfig,
    EngineConfig,
    EvalConfig,
    ReportConfig,
    SchedulingConfig,
    Section,
    StrategyConfig,
    check_name,
)
from greenfl.core.errors import ConfigError
from greenfl.core.files import parse_toml, parse_yaml, read_text

__all__ = [
    "AdaptConfig",
    "AttackConfig",
    "CompressionConfig",
    "DataConfig",
    "DeployConfig",
    "EngineConfig",
    "EvalConfig",
    "FleetConfig",
    "ModelConfig",
    "PrivacyConfig",
    "ReportConfig",
    "RunConfig",
    "SchedulingConfig",
    "SecAggConfig",
    "SelectionConfig",
    "StopConfig",
    "StrategyConfig",
    "TrainConfig",
    "apply_override",
    "build_config",
    "load_config",
]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class TrainConfig(Section):
    rounds: int = Field(20, ge=1, le=10_000_000, description="federated rounds to run (at most)")
    clients_per_round: int = Field(10, ge=1, description="clients whose updates a round aggregates")
    local_epochs: int = Field(1, ge=1, description="passes over its data a client makes per round")
    max_local_steps: int = Field(
        0,
        ge=0,
        description="at most this many local SGD steps per client per round, whatever its "
        "data size (0: every batch of every local epoch)",
    )
    batch_size: int = Field(16, ge=1, description="local SGD mini-batch size")
    lr: float = Field(0.1, gt=0, description="local SGD learning rate")
    momentum: float = Field(0.0, ge=0, lt=1, description="local SGD momentum")


class SelectionConfig(Section):
    name: str = Field("random", description="client selector by registry name")
    fairness: Literal["none", "floor", "jain"] = Field(
        "none", description="guard: floor = every available client once per window; jain"
    )
    fairness_window: int = Field(20, ge=1, description="floor: rounds between forced picks")
    jain_floor: float = Field(0.5, gt=0, le=1, description="jain: min Jain index of participation")
    preferred_duration_s: float | None = Field(
        None, gt=0, description="oort: slower clients are penalised (None: 95th pct of cohort)"
    )
    straggler_penalty: float = Field(2.0, ge=0, description="oort: exponent of the penalty")
    exploration: float = Field(0.9, ge=0, le=1, description="oort: initial exploration share")
    exploration_decay: float = Field(
        0.98, gt=0, le=1, description="oort: exploration share kept each round"
    )
    min_exploration: float = Field(
        0.2, ge=0, le=1, description="oort: floor of the exploration share"
    )

    fedzero_min_epochs: int = Field(
        1, ge=1, description="fedzero: least local epochs a client must fit in the window"
    )
    fedzero_clean_share: float = Field(
        0.5, gt=0, le=1, description="fedzero: share of eligible clients with the cleanest grid"
    )
    autofl_exploration: float = Field(
        0.5, ge=0, le=1, description="autofl: initial share of picks that explore"
    )
    autofl_exploration_decay: float = Field(
        0.95, gt=0, le=1, description="autofl: exploration share kept each round"
    )
    autofl_min_exploration: float = Field(
        0.05, ge=0, le=1, description="autofl: floor of the exploration share"
    )
    autofl_learning_rate: float = Field(
        0.2, gt=0, le=1, description="autofl: step of the Q-value update"
    )

    @field_validator("name")
    @classmethod
    def _known_selector(cls, v: str) -> str:
        from greenfl.selection import SELECTORS

        return check_name("selector", v, list(SELECTORS))


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


class StopConfig(Section):
    target_accuracy: float | None = Field(
        None, gt=0, le=1, description="stop once the test accuracy reaches this"
    )
    carbon_budget_g: float | None = Field(
        None, gt=0, description="stop before a round would exceed this many gCO2e"
    )


class RunConfig(Section):
    seed: int = Field(
        0,
        ge=0,
        le=2**32 - 1,  # numpy's and torch's seeds, and seed + offset, stay in range
        description="seeds the data split, model init, selection, availability and drop-outs",
    )
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    fleet: FleetConfig = Field(default_factory=FleetConfig)
    stop: StopConfig = Field(default_factory=StopConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    compression: CompressionConfig = Field(default_factory=CompressionConfig)
    scheduling: SchedulingConfig = Field(default_factory=SchedulingConfig)
    adapt: AdaptConfig = Field(default_factory=AdaptConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    deploy: DeployConfig = Field(default_factory=DeployConfig)
    attack: AttackConfig = Field(default_factory=AttackConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    secagg: SecAggConfig = Field(default_factory=SecAggConfig)

    @model_validator(mode="after")
    def _cohort_fits(self) -> RunConfig:
        if self.train.clients_per_round > self.data.num_clients:
            raise ValueError(
                f"train.clients_per_round ({self.train.clients_per_round}) exceeds "
                f"data.num_clients ({self.data.num_clients})"
            )
        if max(self.adapt.clients_per_round, default=0) > self.data.num_clients:
            raise ValueError(
                f"adapt.clients_per_round ({max(self.adapt.clients_per_round)}) exceeds "
                f"data.num_clients ({self.data.num_clients})"
            )
        smallest = min([self.train.clients_per_round, *self.adapt.clients_per_round])
        if (
            self.strategy.name == "trimmed_mean"
            and self.strategy.trim_fraction > 0
            and smallest < 3
        ):
            raise ValueError(
                f"strategy.name = 'trimmed_mean' cuts one update per side and keeps one: it "
                f"needs 3 or more clients per round, not {smallest}"
            )
        return self

    @model_validator(mode="after")
    def _safety_combines(self) -> RunConfig:
        check_safety(
            self.attack, self.privacy, self.secagg, self.strategy.name, self.engine.trainer,
            self.train.clients_per_round, self.compression.name,
        )  # fmt: skip
        return self

    @model_validator(mode="after")
    def _fedzero_window(self) -> RunConfig:
        if self.selection.name != "fedzero":
            return self
        if self.fleet.deadline_s is None or self.fleet.partial_work != "aggregate":
            raise ValueError(
                "selection.name = 'fedzero' plans each client's work in the round window: it "
                "needs fleet.deadline_s and fleet.partial_work = 'aggregate'"
            )
        if self.selection.fedzero_min_epochs > self.train.local_epochs:
            raise ValueError(
                f"selection.fedzero_min_epochs ({self.selection.fedzero_min_epochs}) exceeds "
                f"train.local_epochs ({self.train.local_epochs}), fedzero's max"
            )
        return self

    @model_validator(mode="after")
    def _accounting_for_time(self) -> RunConfig:
        if self.engine.accounting:
            return self
        needs = {
            "fleet.deadline_s": self.fleet.deadline_s is not None,
            "fleet.dropout_prob": self.fleet.dropout_prob > 0,
            "fleet.over_selection": self.fleet.over_selection > 0,
            "stop.carbon_budget_g": self.stop.carbon_budget_g is not None,
        }
        if any(needs.values()):
            keys = ", ".join(k for k, v in needs.items() if v)
            raise ValueError(
                f"engine.accounting = false cannot model {keys}: they need the footprint"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return json.loads(self.model_dump_json())

    def replace(self, **overrides: Any) -> RunConfig:
        """A copy with dotted-key overrides, validated again.

        ``cfg.replace(**{"train.rounds": 5})``"""
        return build_config(self.to_dict(), [f"{k}={json.dumps(v)}" for k, v in overrides.items()])


def read_config_file(path: Path) -> dict[str, Any]:
    """A config file's raw keys (TOML, or YAML by suffix), before validation."""
    return _read_file(path)


def _read_file(path: Path) -> dict[str, Any]:
    text = read_text(path, "config file", ConfigError)
    if path.suffix.lower() in (".yaml", ".yml"):
        data = parse_yaml(text, str(path), ConfigError)
        data = {} if data is None else data
    else:
        data = parse_toml(text, str(path), ConfigError)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a table of keys")
    return data


def _parse_value(raw: str) -> Any:
    """An override value: a TOML/JSON literal where it parses as one, else a plain string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        pass
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def apply_override(data: dict[str, Any], assignment: str) -> None:
    if "=" not in assignment:
        raise ConfigError(f"--set expects KEY=VALUE, got {assignment!r}")
    key, raw = assignment.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set expects KEY=VALUE, got {assignment!r}")
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {part} is not a section")
        node = child
    node[parts[-1]] = _parse_value(raw.strip())


def _format_validation_error(exc: ValidationError) -> str:
    messages = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        msg = msg.removeprefix("Value error, ")
        messages.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(messages)


def build_config(
    data: dict[str, Any] | None = None, overrides: list[str] | None = None
) -> RunConfig:
    """Validate a raw mapping plus ``KEY=VALUE`` overrides into a RunConfig."""
    merged: dict[str, Any] = json.loads(json.dumps(data or {}, default=str))
    for assignment in overrides or []:
        apply_override(merged, assignment)
    try:
        return RunConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc)) from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Load a config file (or the built-in quickstart when ``path`` is None) and overrides."""
    if path is None:
        text = resources.files("greenfl").joinpath("examples/quickstart.toml").read_text()
        return build_config(tomllib.loads(text), overrides)
    data = _read_file(Path(path))
    try:
        return build_config(data, overrides)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
