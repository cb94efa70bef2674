"""The ``[submodel]`` section (issue 31): width-scaled sub-models. Each client trains the
first ``ceil(width x units)`` units of every hidden layer of the global model (HeteroFL,
FjORD's ordered dropout), at a width ``choice`` picks for it; the server averages each
coordinate over the clients that trained it (docs/submodels.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from greenfl.config.base import Section, refuse_unsupported
from greenfl.config.engine import EngineConfig
from greenfl.core.errors import ConfigError
from greenfl.submodel import check_model, check_width


class SubmodelConfig(Section):
    key = "submodel"

    name: Literal["none", "heterofl", "fjord"] = Field(
        "none",
        description="none: every client trains the full model; heterofl: each client trains "
        "the width its choice gives it, every round; fjord: each round a client trains a "
        "width drawn uniformly from the widths up to the one its choice gives it (ordered "
        "dropout)",
    )
    widths: list[float] = Field(
        default_factory=lambda: [1.0],
        min_length=1,
        max_length=16,
        description="width ratios in (0, 1], distinct; kept widest first (a hidden layer of n "
        "units keeps its first ceil(width x n))",
    )
    choice: Literal["capability", "carbon", "fixed"] = Field(
        "fixed",
        description="fixed: the i-th client of the run gets the (i mod len(widths))-th width, "
        "widest first (HeteroFL's fixed split); capability: the widest width whose modelled "
        "download, training and upload fit fleet.deadline_s (without a deadline: the median "
        "cohort client's full-width time); carbon: the share full_share of the cohort with "
        "the lowest estimated gCO2e keeps full width, the others train their lowest-gCO2e "
        "width",
    )
    full_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="choice carbon: the least share of each cohort kept at full width (the "
        "clients with the lowest estimated full-width gCO2e)",
    )

    @field_validator("widths")
    @classmethod
    def _widths(cls, widths: list[float]) -> list[float]:
        try:
            checked = [check_width(w) for w in widths]
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        if len(set(checked)) != len(checked):
            raise ValueError(f"submodel.widths must be distinct, got {widths}")
        return sorted(checked, reverse=True)


def check_submodel(
    sm: SubmodelConfig,
    model_name: str,
    strategy_name: str,
    engine: EngineConfig,
    privacy_mode: str,
    secagg_enabled: bool,
    attack_name: str,
    compression_name: str,
) -> None:
    """The combinations sub-models support yet (one line naming the ones refused).
    ``model_name``: the run's model, ``auto`` resolved."""
    if sm.name == "none":
        return
    check_model(model_name)
    if engine.mode != "sync":  # before the strategy: async runs take fedbuff or fedasync
        raise ConfigError(
            f"submodel.name = {sm.name!r} runs in synchronous rounds only: engine.mode = "
            f"{engine.mode!r} (simulated or served) is not supported yet (docs/submodels.md)"
        )
    if strategy_name != "fedavg":
        raise ConfigError(
            f"submodel.name = {sm.name!r} aggregates overlapping slices (HeteroFL): "
            f"strategy.name must be 'fedavg', not {strategy_name!r}"
        )
    refused = {
        "engine.backend = 'ray'": engine.backend != "local",
        "engine.accounting = false": not engine.accounting,
        "privacy.mode": privacy_mode != "none",
        "secagg.enabled": secagg_enabled,
        "attack.name": attack_name != "none",
        f"compression.name = {compression_name!r} (identity, q8 and q4 only)": (
            compression_name not in ("identity", "q8", "q4")
        ),
    }
    refuse_unsupported(f"submodel.name = {sm.name!r}", refused)
