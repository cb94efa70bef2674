"""The round and stopping sections: ``[train]`` (what each round asks of its clients),
``[stop]`` (when the run ends) and ``[eval]`` (who is evaluated, how often)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from greenfl.config.base import Section

# The keys a dataset may give defaults for (greenfl.data.base.DatasetDefaults): a config
# that leaves one unset takes the dataset's value, else the field's default below.
DATASET_DEFAULTED = {
    "train": ("clients_per_round", "local_epochs", "max_local_steps", "batch_size", "lr"),
    "eval": ("every", "clients", "max_samples"),
}


# FitInstructions carries these as int32 (greenfl.proto).
INT32_MAX = 2**31 - 1


class TrainConfig(Section):
    rounds: int = Field(20, ge=1, le=10_000_000, description="federated rounds to run (at most)")
    clients_per_round: int = Field(
        10, ge=1, description="clients whose updates a round aggregates (default: the dataset's)"
    )
    local_epochs: int = Field(
        1,
        ge=1,
        le=INT32_MAX,
        description="passes over its data a client makes per round (default: the dataset's)",
    )
    max_local_steps: int = Field(
        0,
        ge=0,
        le=INT32_MAX,
        description="at most this many local SGD steps per client per round, whatever its "
        "data size (0: every batch of every local epoch; default: the dataset's)",
    )
    # A million: above any client's data (deploy.max_client_samples is 100,000), so
    # larger is a typo; a batch takes the whole partition when the partition is smaller.
    batch_size: int = Field(
        16,
        ge=1,
        le=1_000_000,
        description="local SGD mini-batch size, at most 1,000,000 (default: the dataset's)",
    )
    lr: float = Field(0.1, gt=0, description="local SGD learning rate (default: the dataset's)")
    momentum: float = Field(0.0, ge=0, lt=1, description="local SGD momentum")
    precision: Literal["fp32", "bf16", "fp16", "auto"] = Field(
        "fp32",
        description="arithmetic clients train in: fp32; bf16 or fp16 (mixed precision under "
        "torch.autocast, fp32 weights) on the devices whose execution target declares it, "
        "fp32 on the others; auto: each device's least-energy declared precision. Time and "
        "energy use that precision's throughput and power (docs/footprint.md)",
    )


class StopConfig(Section):
    target_accuracy: float | None = Field(
        None, gt=0, le=1, description="stop once the test accuracy reaches this"
    )
    carbon_budget_g: float | None = Field(
        None, gt=0, description="stop before a round would exceed this many gCO2e"
    )


class EvalConfig(Section):
    every: int = Field(
        1,
        ge=0,
        description="evaluate on clients' own test data every this many rounds (0: never; "
        "default: the dataset's)",
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
