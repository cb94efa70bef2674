"""The data and model sections of a RunConfig: which dataset, where it lives on disk, how it
is split across clients, and which model trains on it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from greenfl.config_sections import Section, check_name

# Datasets read from disk: data.path is where, and each loader's error says how to get it.
ON_DISK = ("femnist", "leaf", "cifar10", "cifar100", "hf")


MAX_WIDTH = 65_536
MAX_LAYERS = 64
MAX_HIDDEN_WEIGHTS = 200_000_000  # 800 MB of float32, before inputs and outputs


class DataConfig(Section):
    dataset: str = Field(
        "digits",
        description="dataset by registry name: digits, synthetic, images, shakespeare "
        "(built in); femnist, leaf, cifar10, cifar100, hf (read from data.path)",
    )
    path: str | None = Field(
        None,
        min_length=1,
        description="on-disk datasets: LEAF's data folder (holding train/ and test/), "
        "torchvision's CIFAR root (holding cifar-10-batches-py/), or a save_to_disk folder",
    )
    num_clients: int = Field(
        100,
        ge=1,
        le=100_000_000,
        description="clients in the population; naturally split datasets (shakespeare, "
        "femnist, leaf, hf with natural_id) take a seeded subset of this many users",
    )
    partition: Literal["iid", "dirichlet", "shard"] = Field(
        "iid",
        description="how samples are split across clients: iid, dirichlet (label skew) or shard",
    )
    alpha: float = Field(0.5, gt=0, description="Dirichlet concentration; smaller = more skew")
    classes_per_client: int = Field(2, ge=1, description="shard partition: classes per client")
    test_fraction: float = Field(
        0.2,
        gt=0,
        lt=1,
        description="digits: share held out for central evaluation; leaf_split=sample and "
        "hf without a test split: each client's share held out as its test data",
    )
    natural_id: str | None = Field(
        None,
        min_length=1,
        description="hf: the column whose values are the clients (one client per value); "
        "none: split by data.partition",
    )
    feature_column: str | None = Field(
        None, min_length=1, description="hf: the features column; none: the only other one"
    )
    label_column: str = Field("label", min_length=1, description="hf: the labels column")
    leaf_split: Literal["leaf", "sample"] = Field(
        "leaf",
        description="femnist/leaf: LEAF's own train/test files, or each user's samples "
        "pooled and split by test_fraction",
    )
    min_samples: int = Field(
        64,
        ge=1,
        description="shakespeare: roles with fewer samples are dropped (LEAF's filter)",
    )
    synthetic_alpha: float = Field(1.0, ge=0, description="Synthetic(alpha, beta): model skew")
    synthetic_beta: float = Field(1.0, ge=0, description="Synthetic(alpha, beta): feature skew")
    synthetic_sizes: Literal["clipped", "fedprox"] = Field(
        "clipped",
        description="synthetic client sizes: clipped (lognormal, sigma 1, mean "
        "samples_per_client, in [5, 444]) or fedprox (the authors' lognormal(4, 2) + 50)",
    )
    samples_per_client: float = Field(
        20.0, gt=0, description="synthetic: mean client size; images: samples per client"
    )

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, v: str) -> str:
        from greenfl.data import DATASETS

        return check_name("dataset", v, list(DATASETS))

    @model_validator(mode="after")
    def _path_for_on_disk(self) -> DataConfig:
        if self.dataset in ON_DISK and self.path is None:
            raise ValueError(
                f"data.dataset = {self.dataset!r} is read from disk: set data.path "
                "(the datasets page of the docs says what folder it wants)"
            )
        return self


class ModelConfig(Section):
    name: str = Field(
        "auto",
        description="model by registry name (mlp, cnn, femnist_cnn, char_lstm, cifar_cnn, "
        "resnet20); auto: the dataset's standard model",
    )
    hidden: list[int] = Field(
        default_factory=lambda: [64], description="widths of the MLP's hidden layers"
    )

    @field_validator("name")
    @classmethod
    def _known_model(cls, v: str) -> str:
        from greenfl.models import MODELS

        return v if v == "auto" else check_name("model", v, list(MODELS))

    @field_validator("hidden")
    @classmethod
    def _positive_hidden(cls, v: list[int]) -> list[int]:
        if any(h < 1 for h in v):
            raise ValueError("every hidden layer width must be >= 1")
        if any(h > MAX_WIDTH for h in v) or len(v) > MAX_LAYERS:
            # A width of 2e9 would allocate hundreds of GB before anything could fail.
            raise ValueError(f"at most {MAX_LAYERS} hidden layers of width <= {MAX_WIDTH}")
        between = sum(a * b for a, b in zip(v, v[1:], strict=False))
        if between > MAX_HIDDEN_WEIGHTS:
            raise ValueError(
                f"{between} weights between hidden layers, more than {MAX_HIDDEN_WEIGHTS}"
            )
        return v
