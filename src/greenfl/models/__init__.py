"""Built-in models and FLOP counting. A model is one entry in MODELS (or an entry point in
the ``greenfl.models`` group of an installed package): a builder type with its own
``Params`` and ``build(input_shape, num_classes, params) -> torch.nn.Module``.

Importing this package imports no model (nor torch); FLOP counting is in
``greenfl.models.flops``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from greenfl.core.registry import Registry

if TYPE_CHECKING:
    from torch import nn


class ModelBuilder(Protocol):
    Params: type

    @staticmethod
    def build(input_shape: tuple[int, ...], num_classes: int, params: Any) -> nn.Module: ...


MODELS: Registry[ModelBuilder] = Registry(
    "model",
    "greenfl.models",
    {
        "mlp": "greenfl.models.builtin:Mlp",
        "cnn": "greenfl.models.builtin:Cnn",
        "femnist_cnn": "greenfl.models.reference:FemnistCnn",
        "char_lstm": "greenfl.models.reference:CharLstmModel",
        "cifar_cnn": "greenfl.models.reference:CifarCnn",
        "resnet20": "greenfl.models.reference:ResNet20",
    },
)


def build_model(
    name: str, input_shape: tuple[int, ...], num_classes: int, **params: Any
) -> nn.Module:
    """The model registered as ``name`` for these inputs and classes, with these
    parameters of its own (the others keep their defaults): ``build_model("mlp", (64,),
    10, hidden=[32])``."""
    builder = MODELS.lookup(name)
    return builder.build(input_shape, num_classes, MODELS.parse(name, params, f"model {name!r}"))


__all__ = ["MODELS", "ModelBuilder", "build_model"]
