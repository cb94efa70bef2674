"""RunConfig: every section of a run, the rules that tie sections together, and how one is
built from a raw mapping: built-in defaults < the dataset's defaults < the mapping (a
config file) < ``--set`` overrides."""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field, PrivateAttr, ValidationError, model_validator

from greenfl.config.asynchronous import AsyncConfig
from greenfl.config.base import Section, registry
from greenfl.config.data import DATASETS_REF, DataConfig, ModelConfig
from greenfl.config.deploy import DeployConfig
from greenfl.config.engine import EngineConfig
from greenfl.config.fleet import FleetConfig
from greenfl.config.keys import apply_override, key_problem, raw_keys, split_override
from greenfl.config.policies import (
    AdaptConfig,
    CompressionConfig,
    SchedulingConfig,
    SelectionConfig,
    StrategyConfig,
)
from greenfl.config.report import ReportConfig
from greenfl.config.safety import AttackConfig, PrivacyConfig, SecAggConfig, check_safety
from greenfl.config.sparsity import SparsityConfig, check_sparsity
from greenfl.config.submodel import SubmodelConfig, check_submodel
from greenfl.config.train import DATASET_DEFAULTED, EvalConfig, StopConfig, TrainConfig
from greenfl.core.errors import ConfigError
from greenfl.core.registry import format_errors


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
    # ``async`` is a Python keyword: the field is async_, the config key [async].
    async_: AsyncConfig = Field(default_factory=AsyncConfig, alias="async")
    submodel: SubmodelConfig = Field(default_factory=SubmodelConfig)
    sparsity: SparsityConfig = Field(default_factory=SparsityConfig)

    # The raw mapping this config was built from (before the dataset's defaults were
    # filled in), so that ``replace`` re-derives those defaults when the dataset changes.
    _source: dict[str, Any] | None = PrivateAttr(default=None)

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
        return self

    @model_validator(mode="after")
    def _safety_combines(self) -> RunConfig:
        check_safety(
            self.attack,
            self.privacy,
            self.secagg,
            self.strategy.name,
            self.engine.trainer,
            self.train.clients_per_round,
            self.compression.name,
        )
        return self

    @model_validator(mode="after")
    def _fedzero_window(self) -> RunConfig:
        # FedZero plans each client's work inside the round window: a rule about the fleet
        # section that its selector cannot check from its own parameters.
        if self.selection.name != "fedzero":
            return self
        if self.fleet.deadline_s is None or self.fleet.partial_work != "aggregate":
            raise ValueError(
                "selection.name = 'fedzero' plans each client's work in the round window: it "
                "needs fleet.deadline_s and fleet.partial_work = 'aggregate'"
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

    @model_validator(mode="after")
    def _async_combines(self) -> RunConfig:
        check_async(self)
        return self

    @model_validator(mode="after")
    def _submodel_combines(self) -> RunConfig:
        model = self.model.name
        if model == "auto":
            datasets = registry(DATASETS_REF)
            dataset = datasets[self.data.dataset] if self.data.dataset in datasets else None
            model = dataset.defaults.model if dataset is not None else model
        try:
            check_submodel(
                self.submodel,
                model,
                self.strategy.name,
                self.engine,
                self.privacy.mode,
                self.secagg.enabled,
                self.attack.name,
                self.compression.name,
            )
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        # the adapt bandit's width arms are widths of the run's sub-models
        if self.adapt.widths:
            outside = [w for w in self.adapt.widths if w not in self.submodel.widths]
            if self.submodel.name == "none" or outside:
                raise ValueError(
                    f"adapt.widths {self.adapt.widths} must be widths of the run's sub-models "
                    f"(submodel.name = {self.submodel.name!r}, submodel.widths = "
                    f"{self.submodel.widths})"
                )
        return self

    @model_validator(mode="after")
    def _sparsity_combines(self) -> RunConfig:
        try:
            check_sparsity(
                self.sparsity,
                self.train.rounds,
                self.engine,
                self.privacy.mode,
                self.secagg.enabled,
                self.submodel.name,
                self.compression.name,
            )
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return self

    @model_validator(mode="after")
    def _precision_combines(self) -> RunConfig:
        # Mixed precision trains in the synchronous round; elsewhere a client would train
        # fp32 while the footprint charged the precision's rates.
        precision = self.train.precision
        if precision == "fp32":
            return self
        refused = {
            "engine.mode = 'async'": self.engine.mode != "sync",
            "privacy.mode = 'local' (DP-SGD trains in fp32)": self.privacy.mode == "local",
        }
        if any(refused.values()):
            keys = ", ".join(k for k, v in refused.items() if v)
            raise ValueError(
                f"train.precision = {precision!r} does not support {keys} yet "
                "(docs/footprint.md#mixed-precision)"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return json.loads(self.model_dump_json(by_alias=True))

    def replace(self, **overrides: Any) -> RunConfig:
        """A copy with dotted-key overrides, validated again: ``cfg.replace(**{"train.rounds":
        5})``. Keys the dataset filled in are filled in again, from the dataset the copy
        names."""
        source = self._source if self._source is not None else self.to_dict()
        return build_config(source, [f"{k}={json.dumps(v)}" for k, v in overrides.items()])


ASYNC_STRATEGIES = ("fedbuff", "fedasync")


def check_async(cfg: RunConfig) -> None:
    """The rules of ``engine.mode = "async"``: its strategies only there, and none of the
    synchronous round's settings that have no meaning without rounds."""
    from greenfl.strategy import serves_sum

    name, a = cfg.strategy.name, cfg.async_
    if cfg.engine.mode == "sync":
        if name in ASYNC_STRATEGIES:
            raise ValueError(f"strategy.name = {name!r} needs engine.mode = 'async'")
        return
    if name not in ASYNC_STRATEGIES and serves_sum(name):
        raise ValueError(
            f"engine.mode = 'async' applies updates with fedbuff, fedasync or a robust "
            f"strategy over the buffer, not {name!r} (fedbuff with server_lr 1 is FedAvg's "
            "step on each buffer)"
        )
    if name == "fedasync" and a.buffer_size not in (None, 1):
        raise ValueError("strategy fedasync mixes in each update on arrival: async.buffer_size "
                         "must be 1 (or unset)")  # fmt: skip
    if a.concurrency > cfg.data.num_clients:
        raise ValueError(
            f"async.concurrency ({a.concurrency}) exceeds data.num_clients ({cfg.data.num_clients})"
        )
    refused = {
        "fleet.deadline_s": cfg.fleet.deadline_s is not None,
        "fleet.over_selection": cfg.fleet.over_selection > 0,
        "scheduling.name (async.carbon_aware shifts work in time)": cfg.scheduling.name != "none",
        "adapt.name": cfg.adapt.name != "none",
        "privacy.mode": cfg.privacy.mode != "none",
        "secagg.enabled": cfg.secagg.enabled,
        "engine.backend = 'ray'": cfg.engine.backend != "local",
        "engine.accounting = false": not cfg.engine.accounting,
    }
    if any(refused.values()):
        keys = ", ".join(k for k, v in refused.items() if v)
        raise ValueError(f"engine.mode = 'async' does not support {keys} (docs/async.md)")


def with_dataset_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with the keys the dataset gives defaults for (its standard round and
    evaluation settings) filled in where the config leaves them unset."""
    name = (data.get("data") or {}).get("dataset", "digits")
    datasets = registry(DATASETS_REF)
    if not isinstance(name, str) or name not in datasets:
        return data  # validation names the unknown dataset
    defaults = datasets[name].defaults
    out = dict(data)
    for section, keys in DATASET_DEFAULTED.items():
        given = dict(out.get(section) or {})
        own = getattr(defaults, section)
        for key in keys:
            if key not in given and key in own:
                given[key] = own[key]
        if given:
            out[section] = given
    return out


def build_config(
    data: dict[str, Any] | None = None,
    overrides: list[str] | None = None,
    *,
    source: str | None = None,
) -> RunConfig:
    """Validate a raw mapping plus ``KEY=VALUE`` overrides into a RunConfig. ``source``
    names where ``data`` came from (a file), for messages; a mistake that an override
    brought in is blamed on that ``--set``."""
    merged: dict[str, Any] = json.loads(json.dumps(data or {}, default=str))
    if not isinstance(merged, dict):
        raise ConfigError("a config must be a table of keys")
    blame = f"{source}: " if source else ""
    for parts in raw_keys(merged):
        problem = key_problem(RunConfig, parts)
        if problem is not None:
            raise ConfigError(blame + problem)
    given: dict[str, str] = {}  # dotted key -> the --set that set it
    for assignment in overrides or []:
        key, _ = split_override(assignment)
        problem = key_problem(RunConfig, key.split("."))
        if problem is not None:
            raise ConfigError(f"--set {assignment}: {problem}")
        apply_override(merged, assignment)
        given[key] = assignment
    try:
        cfg = RunConfig.model_validate(with_dataset_defaults(merged))
    except ValidationError as exc:
        raise ConfigError(_blamed(exc, given, blame)) from None
    except ConfigError as exc:
        raise ConfigError(_blamed_text(str(exc), given, blame)) from None
    cfg._source = merged
    return cfg


def _blamed(exc: ValidationError, given: dict[str, str], blame: str) -> str:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    return _blamed_text(format_errors(exc), given, blame, loc)


def _blamed_text(text: str, given: dict[str, str], blame: str, loc: str | None = None) -> str:
    """``text`` prefixed by the --set that set the key it is about, else by the file."""
    about = loc if loc is not None else text.split(":", 1)[0].split(" ", 1)[0]
    for key, assignment in given.items():
        if about == key or about.startswith(key + ".") or key.startswith(about + "."):
            return f"--set {assignment}: {text}"
    return blame + text
