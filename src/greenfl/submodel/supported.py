"""The models sub-models are defined for, by registry name, and the family whose rule
slices each (docs/submodels.md). No torch: the config layer can check a name cheaply."""

from __future__ import annotations

from greenfl.core.errors import ConfigError

SUPPORTED_MODELS: dict[str, str] = {
    "mlp": "sequential",
    "cnn": "sequential",
    "femnist_cnn": "sequential",
    "cifar_cnn": "sequential",
    "resnet20": "sequential",
    "char_lstm": "lstm",
}


def check_model(name: str) -> str:
    """``name`` if sub-models of that model are supported; a ConfigError naming the
    supported ones if not."""
    if name not in SUPPORTED_MODELS:
        raise ConfigError(
            f"sub-models of model {name!r} are not supported; supported models: "
            + ", ".join(SUPPORTED_MODELS)
        )
    return name
