"""The run config's safety sections: attacks simulated against the run (``[attack]``),
differential privacy (``[privacy]``) and secure aggregation (``[secagg]``). greenfl.config
re-exports them and checks how they combine with the rest of a run."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from greenfl.config.base import Section

AttackName = Literal["none", "sign_flip", "scaling", "noise", "label_flip", "alie", "backdoor"]


class AttackConfig(Section):
    name: AttackName = Field(
        "none",
        description="the attack malicious clients mount: none, sign_flip, scaling, noise, "
        "label_flip, alie (a little is enough), backdoor (pixel pattern)",
    )
    fraction: float = Field(
        0.0,
        ge=0,
        le=0.5,
        description="share of the population that is malicious, chosen by seed (the ledger "
        "records who; strategies never see it)",
    )
    scale: float | None = Field(
        None,
        gt=0,
        le=1e12,
        description="sign_flip: the flipped update's multiple (1); scaling and backdoor: the "
        "boost of model replacement (scaling: train.clients_per_round; backdoor: 1, plain "
        "poisoning); noise: the std of the Gaussian sent instead of an update (1); alie: "
        "the z of mean - z x std (none: Baruch et al.'s z from the cohort and attackers)",
    )
    backdoor_target: int = Field(0, ge=0, description="backdoor: the label the trigger forces")
    backdoor_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="backdoor: share of a malicious client's samples stamped with the "
        "trigger and relabelled",
    )
    trigger_size: int = Field(
        2, ge=1, le=64, description="backdoor: side of the square pixel pattern (pixels)"
    )

    @model_validator(mode="after")
    def _attackers_when_named(self) -> AttackConfig:
        if self.name != "none" and self.fraction == 0:
            raise ValueError(f"attack.name = {self.name!r} needs attack.fraction > 0")
        if self.name == "none" and self.fraction > 0:
            raise ValueError("attack.fraction > 0 needs an attack.name other than 'none'")
        return self


class PrivacyConfig(Section):
    mode: Literal["none", "central", "local"] = Field(
        "none",
        description="none; central: user-level DP-FedAvg, updates clipped and noised on the "
        "server; local: sample-level DP-SGD on each client (Opacus)",
    )
    noise_multiplier: float = Field(
        1.0, ge=0, le=1e4, description="Gaussian noise std as a multiple of clip_norm"
    )
    clip_norm: float = Field(
        1.0,
        gt=0,
        le=1e6,
        description="central: L2 bound of each client's update (the initial bound with "
        "adaptive_clip); local: L2 bound of each per-sample gradient",
    )
    adaptive_clip: bool = Field(
        False,
        description="central: move clip_norm towards the target_quantile of update norms "
        "(Andrew et al., 2021)",
    )
    target_quantile: float = Field(
        0.5, gt=0, lt=1, description="adaptive_clip: share of updates left unclipped"
    )
    clip_lr: float = Field(0.2, gt=0, le=10, description="adaptive_clip: geometric step size")
    clip_count_stddev: float | None = Field(
        None,
        gt=0,
        le=1e6,
        description="adaptive_clip: noise std of the unclipped count (none: cohort / 20, "
        "Andrew et al.'s choice); it takes its share of noise_multiplier",
    )
    delta: float = Field(1e-5, gt=0, lt=1, description="the delta of (epsilon, delta)-DP")
    epsilon_budget: float | None = Field(
        None,
        gt=0,
        le=1e6,
        description="stop before a round would spend more than this epsilon; none: no budget",
    )
    sampling: Literal["poisson", "fixed"] = Field(
        "poisson",
        description="central: how the accountant models client sampling: poisson (rate k/n, "
        "the standard DP-FedAvg analysis) or fixed (k of n without replacement)",
    )


class SecAggConfig(Section):
    enabled: bool = Field(
        False,
        description="secure aggregation (SecAgg, SecAgg+): the server learns only the sum of "
        "the updates; a deployment runs the protocol, a simulation charges its cost",
    )
    neighbours: int | None = Field(
        None,
        ge=2,
        le=100_000,
        description="SecAgg+: clients each masks with (none: every other client of the round)",
    )
    threshold: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="shares that rebuild a secret (none: a majority of each neighbourhood)",
    )
    clip_range: float = Field(
        4.0,
        gt=0,
        le=1e4,
        description="each weighted update value is clipped to [-clip_range, clip_range] "
        "before fixed-point encoding",
    )
    stage_timeout_s: float = Field(
        30.0, gt=0, le=86_400, description="deployment: how long each message round waits"
    )


def check_safety(
    attack: AttackConfig,
    privacy: PrivacyConfig,
    secagg: SecAggConfig,
    strategy_name: str,
    trainer: str,
    clients_per_round: int,
    compression_name: str,
) -> None:
    """How the safety sections combine with the rest of a run; ValueError names the keys."""
    if privacy.epsilon_budget is not None and privacy.mode == "none":
        raise ValueError("privacy.epsilon_budget needs privacy.mode = 'central' or 'local'")
    if privacy.epsilon_budget is not None and privacy.noise_multiplier == 0:
        raise ValueError(
            "privacy.epsilon_budget needs privacy.noise_multiplier > 0: without noise "
            "epsilon is infinite"
        )
    if privacy.mode != "none" and privacy.noise_multiplier == 0:
        raise ValueError(
            f"privacy.mode = {privacy.mode!r} needs privacy.noise_multiplier > 0: without "
            "noise there is no privacy guarantee (for clipping alone, strategy.name = 'clip')"
        )
    if privacy.mode == "local" and trainer == "vectorised":
        raise ValueError(
            "privacy.mode = 'local' trains with per-sample clipping (DP-SGD), which the "
            "vectorised trainer does not do: set engine.trainer = 'sequential' or 'auto'"
        )
    if privacy.adaptive_clip and privacy.mode != "central":
        raise ValueError("privacy.adaptive_clip applies to privacy.mode = 'central' only")
    if privacy.adaptive_clip:
        # The unclipped count takes noise std sigma_b out of the round's noise_multiplier
        # sigma; the update keeps (sigma^-2 - (2 sigma_b)^-2)^-1/2, real only if sigma_b >
        # sigma / 2 (Andrew et al., 2021).
        count_std = privacy.clip_count_stddev or clients_per_round / 20
        if count_std <= privacy.noise_multiplier / 2:
            raise ValueError(
                f"privacy.adaptive_clip: the count's noise std ({count_std:g}; "
                f"privacy.clip_count_stddev, or clients_per_round / 20) must exceed "
                f"privacy.noise_multiplier / 2 ({privacy.noise_multiplier / 2:g})"
            )
    if not secagg.enabled:
        return
    if compression_name != "identity":
        raise ValueError(
            f"secagg.enabled needs compression.name = 'identity', not {compression_name!r}: "
            "masked values are uniform 32-bit words and do not compress"
        )
    from greenfl.strategy import STRATEGIES, serves_sum

    if not serves_sum(strategy_name):
        sums = [n for n in STRATEGIES.names() if serves_sum(n)]
        raise ValueError(
            f"secagg.enabled: the server sees only the sum of the updates, and "
            f"strategy.name = {strategy_name!r} needs each update; use one of "
            f"{', '.join(sums)}"
        )
    if privacy.mode == "central":
        raise ValueError(
            "secagg.enabled with privacy.mode = 'central': the server cannot clip updates "
            "it never sees; use privacy.mode = 'local' (clients clip and noise)"
        )
