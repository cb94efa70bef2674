"""The sections that name a registered policy: ``[strategy]``, ``[selection]``,
``[compression]``, ``[scheduling]`` and ``[adapt]``. Each is ``name`` plus ``params``,
validated by the named policy's own Params type (``greenfl.core.registry``); the config
reference lists every policy's parameters."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from greenfl.config.base import PolicySection, params_field

# Keys that sat flat in a section before policies owned their parameters, and where each
# lives now: a config that still uses one gets one line naming its new place.
_STRATEGY_MOVED = {
    "mu": "params.mu (fedprox)",
    "server_lr": "params.server_lr (fedavgm, fedadam, fedyogi, fedadagrad)",
    "server_momentum": "params.server_momentum (fedavgm)",
    "beta1": "params.beta1 (fedadam, fedyogi, fedadagrad)",
    "beta2": "params.beta2 (fedadam, fedyogi, fedadagrad)",
    "tau": "params.tau (fedadam, fedyogi, fedadagrad)",
    "trim_fraction": "params.trim_fraction (trimmed_mean)",
    "byzantine": "params.byzantine (the robust strategies)",
    "multikrum_selected": "params.selected (multikrum)",
    "clip_norm": "params.norm (clip)",
    "clip_noise_std": "params.noise_std (clip)",
    "centered_clip_radius": "params.radius (centered_clip)",
    "centered_clip_iterations": "params.iterations (centered_clip)",
    "geomedian_iterations": "params.iterations (geomedian)",
}
_SELECTION_MOVED = {
    "preferred_duration_s": "params.preferred_duration_s (oort)",
    "straggler_penalty": "params.straggler_penalty (oort)",
    "exploration": "params.exploration (oort, autofl)",
    "exploration_decay": "params.exploration_decay (oort, autofl)",
    "min_exploration": "params.min_exploration (oort, autofl)",
    "fedzero_min_epochs": "params.min_epochs (fedzero)",
    "fedzero_clean_share": "params.clean_share (fedzero)",
    "autofl_exploration": "params.exploration (autofl)",
    "autofl_exploration_decay": "params.exploration_decay (autofl)",
    "autofl_min_exploration": "params.min_exploration (autofl)",
    "autofl_learning_rate": "params.learning_rate (autofl)",
}


class StrategyConfig(PolicySection):
    key = "strategy"
    registry_ref = "greenfl.strategy:STRATEGIES"
    moved = _STRATEGY_MOVED

    name: str = Field("fedavg", description="aggregation strategy by registry name")
    params: dict[str, Any] = params_field()


class SelectionConfig(PolicySection):
    key = "selection"
    registry_ref = "greenfl.selection:SELECTORS"
    moved = _SELECTION_MOVED

    name: str = Field("random", description="client selector by registry name")
    params: dict[str, Any] = params_field()
    # The guard wraps any selector: it is not one selector's parameter.
    fairness: Literal["none", "floor", "jain"] = Field(
        "none", description="guard: floor = every available client once per window; jain"
    )
    fairness_window: int = Field(20, ge=1, description="floor: rounds between forced picks")
    jain_floor: float = Field(0.5, gt=0, le=1, description="jain: min Jain index of participation")


class CompressionConfig(PolicySection):
    key = "compression"
    registry_ref = "greenfl.compression:CODECS"
    moved = {"topk_ratio": "params.ratio (topk)", "chunk_size": "params.chunk_size (q8, q4)"}

    name: str = Field(
        "identity", description="update codec by registry name (identity, q8, q4, topk)"
    )
    params: dict[str, Any] = params_field()


class SchedulingConfig(PolicySection):
    key = "scheduling"
    registry_ref = "greenfl.scheduling:SCHEDULERS"
    none_allowed = True
    moved = {k: f"params.{k} (carbon)" for k in ("slack_s", "step_s", "max_total_wait_s")}

    name: str = Field(
        "none",
        description="none (start every round at once), or carbon (wait for a lower-carbon window)",
    )
    params: dict[str, Any] = params_field()


class AdaptConfig(PolicySection):
    key = "adapt"
    registry_ref = "greenfl.adapt:ADAPTERS"
    none_allowed = True
    moved = {
        "exploration": "params.exploration (ucb)",
        "prior_rounds": "params.prior_rounds (pooled)",
        "gain_sd": "params.gain_sd (pooled)",
    }

    name: str = Field(
        "none",
        description="bandit over round parameters: none, ucb, thompson, or pooled (Thompson "
        "on gain per round shared across arms, per expected gCO2e; no round-robin start)",
    )
    params: dict[str, Any] = params_field()
    # The arms and the execution target belong to the adaptation, whichever bandit runs.
    clients_per_round: list[int] = Field(default_factory=list, description="arms; [] = train's")
    local_epochs: list[int] = Field(default_factory=list, description="arms; [] = train's")
    batch_size: list[int] = Field(default_factory=list, description="arms; [] = train's")
    widths: list[float] = Field(
        default_factory=list,
        max_length=16,
        description="arms: the widest sub-model width a round trains, each one of "
        "submodel.widths ([] = no cap; needs submodel.name other than none)",
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
