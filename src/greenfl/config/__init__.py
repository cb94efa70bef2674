"""The run config: one frozen pydantic model per section, cut by concept.

- ``base``: what every section shares, and the sections naming a policy (name + params);
- ``data``: ``[data]`` and ``[model]``; ``train``: ``[train]``, ``[stop]``, ``[eval]``;
- ``policies``: ``[strategy]``, ``[selection]``, ``[compression]``, ``[scheduling]``,
  ``[adapt]``;
- ``fleet``, ``engine``, ``deploy``, ``report``: one section each;
- ``safety``: ``[attack]``, ``[privacy]``, ``[secagg]`` and how they combine;
- ``run``: RunConfig, the rules across sections, building one from a mapping;
  ``keys``: dotted keys and ``--set``; ``load``: config files.

Only the composition root (greenfl.factories), the CLI and the API read a RunConfig: the
engine, the accounting, the policies and the report are handed objects and settings."""

from greenfl.config.data import DataConfig, ModelConfig
from greenfl.config.deploy import DeployConfig
from greenfl.config.engine import EngineConfig
from greenfl.config.fleet import FleetConfig
from greenfl.config.keys import apply_override, parse_value
from greenfl.config.load import load_config, read_config_file, stored_config
from greenfl.config.policies import (
    AdaptConfig,
    CompressionConfig,
    SchedulingConfig,
    SelectionConfig,
    StrategyConfig,
)
from greenfl.config.report import ReportConfig
from greenfl.config.run import RunConfig, build_config
from greenfl.config.safety import AttackConfig, PrivacyConfig, SecAggConfig
from greenfl.config.train import EvalConfig, StopConfig, TrainConfig

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
    "parse_value",
    "read_config_file",
    "stored_config",
]
