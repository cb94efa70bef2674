"""The ``[sparsity]`` section (issue 31, item 3): sparse training. The server prunes the
global model by weight magnitude to ``target`` on Zhu & Gupta's (2017) gradual schedule
from ``start_round`` to ``end_round``, keeps the mask and applies it after every
aggregation; clients train the masked model and send only its kept coordinates. FLOPs stay
the dense model's: dense kernels on an unstructured mask save bytes, not FLOPs. With
``structured = true`` whole units are pruned, clients train the smaller model left, and
its FLOPs are counted (docs/submodels.md, "Sparse training")."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from greenfl.config.base import Section, refuse_unsupported
from greenfl.config.engine import EngineConfig
from greenfl.core.errors import ConfigError


class SparsityConfig(Section):
    key = "sparsity"

    name: Literal["none", "magnitude"] = Field(
        "none",
        description="none: dense training; magnitude: after aggregating each pruning round "
        "the server prunes the smallest-magnitude weights of every linear, convolutional and "
        "recurrent weight tensor to the schedule's sparsity (biases and norms stay dense)",
    )
    target: float = Field(
        0.5,
        ge=0,
        lt=1,
        description="the final share of prunable weights pruned, reached after end_round",
    )
    start_round: int = Field(
        1,
        ge=1,
        description="the first round after which the server prunes (Zhu & Gupta's t0: the "
        "schedule's sparsity there is 0, its first real cut comes every_rounds later)",
    )
    end_round: int = Field(
        10,
        ge=1,
        description="the round after which the mask reaches target and stops changing; at "
        "most train.rounds",
    )
    every_rounds: int = Field(
        1,
        ge=1,
        description="rounds between pruning steps (Zhu & Gupta's dt); the server also prunes "
        "after end_round",
    )

    structured: bool = Field(
        False,
        description="false: prune single weights (unstructured: bytes fall, FLOPs stay "
        "dense); true: prune whole hidden units and channels of a feed-forward model (mlp, "
        "cnn, femnist_cnn, cifar_cnn) by the L2 norm of their incoming weights, so clients "
        "train the smaller model left and its FLOPs are counted",
    )

    @model_validator(mode="after")
    def _ordered(self) -> SparsityConfig:
        if self.end_round < self.start_round:
            raise ValueError(
                f"sparsity.end_round ({self.end_round}) is before sparsity.start_round "
                f"({self.start_round})"
            )
        return self


def check_sparsity(
    sp: SparsityConfig,
    rounds: int,
    engine: EngineConfig,
    privacy_mode: str,
    secagg_enabled: bool,
    submodel_name: str,
    compression_name: str,
) -> None:
    """The combinations sparse training supports yet (one line naming the ones refused)."""
    if sp.name == "none":
        return
    if sp.end_round > rounds:
        raise ConfigError(
            f"sparsity.end_round ({sp.end_round}) is after train.rounds ({rounds}): the "
            "target would never be reached"
        )
    refused = {
        "engine.mode = 'async'": engine.mode != "sync",
        "engine.backend = 'ray'": engine.backend != "local",
        # the stacked step trains every weight; the masked forward needs the sequential one
        "engine.trainer = 'vectorised' (structured = true can)": (
            engine.trainer == "vectorised" and not sp.structured
        ),
        "privacy.mode": privacy_mode != "none",
        "secagg.enabled": secagg_enabled,
        "submodel.name": submodel_name != "none",
        f"compression.name = {compression_name!r} (identity, q8 and q4 only)": (
            compression_name not in ("identity", "q8", "q4")
        ),
    }
    refuse_unsupported(f"sparsity.name = {sp.name!r}", refused)
