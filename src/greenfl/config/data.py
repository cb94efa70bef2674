"""The data and model sections of a RunConfig: which dataset, where it lives on disk, how it
is split across clients, and which model trains on it. Both name a registered entry
(``greenfl.data.DATASETS``, ``greenfl.models.MODELS``) whose own ``params`` it validates."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from greenfl.config.base import PolicySection, Section, params_field, registry, validated_params

DATASETS_REF = "greenfl.data:DATASETS"


class DataConfig(Section):
    """The keys every dataset shares; a dataset's own keys go in ``data.params``."""

    key = "data"
    moved = {
        "synthetic_alpha": "params.alpha (synthetic)",
        "synthetic_beta": "params.beta (synthetic)",
        "synthetic_sizes": "params.sizes (synthetic)",
        "samples_per_client": "params.samples_per_client (synthetic, images)",
        "min_samples": "params.min_samples (shakespeare)",
        "leaf_split": "params.split (femnist, leaf)",
    }

    dataset: str = Field(
        "digits",
        description="dataset by registry name: digits, synthetic, images, shakespeare, "
        "femnist_writers (built in); femnist, leaf, cifar10, cifar100, hf (read from "
        "data.path)",
    )
    params: dict[str, Any] = params_field()
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
        description="digits: share held out for central evaluation; leaf split = sample, "
        "shakespeare and hf without a test split: each client's share held out as its test data",
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
    region_skew: float = Field(
        0.0,
        ge=0,
        le=1,
        description="how much clients' data depends on their fleet region (0: not at all; "
        "1: the most): each region favours a fifth of the classes and shifts float features "
        "by its own pattern (the datasets page says how)",
    )

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, v: str) -> str:
        return registry(DATASETS_REF).check(v)

    @field_validator("params")
    @classmethod
    def _own_params(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        name = info.data.get("dataset")
        return value if name is None else validated_params(DATASETS_REF, "data", name, value)

    @model_validator(mode="after")
    def _path_for_on_disk(self) -> DataConfig:
        if self.path is None and registry(DATASETS_REF)[self.dataset].reads_path:
            raise ValueError(
                f"data.dataset = {self.dataset!r} is read from disk: set data.path "
                "(the datasets page of the docs says what folder it wants)"
            )
        return self


class ModelConfig(PolicySection):
    key = "model"
    registry_ref = "greenfl.models:MODELS"
    moved = {"hidden": "params.hidden (mlp)"}

    name: str = Field(
        "auto",
        description="model by registry name (mlp, cnn, femnist_cnn, char_lstm, cifar_cnn, "
        "resnet20); auto: the dataset's standard model",
    )
    params: dict[str, Any] = params_field()

    @field_validator("name", check_fields=False)
    @classmethod
    def _known_policy(cls, name: str) -> str:
        return name if name == "auto" else registry(cls.registry_ref).check(name)

    @field_validator("params", check_fields=False)
    @classmethod
    def _own_params(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        # With "auto" the model depends on the dataset: its params are checked when the run
        # is built (greenfl.factories), where the dataset is known.
        name = info.data.get("name")
        if name is None or name == "auto":
            return value
        return validated_params(cls.registry_ref, cls.key, name, value)
