"""Layer kinds that walks over a feed-forward model share: the parameter-free layers that
keep the unit layout of the activation (a linear layer's features, a conv's channels).
Pruning whole units (``greenfl.sparse.channels``) and slicing sub-models
(``greenfl.submodel.sequential``) both pass the kept units through them unchanged; a
flatten regroups channels into features, which each walk handles where it meets one."""

from __future__ import annotations

from torch import nn

UNIT_PRESERVING: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.GELU,
    nn.MaxPool2d,
    nn.AvgPool2d,
    # pools each channel to a fixed size: channels stay, features per channel are fixed
    nn.AdaptiveAvgPool2d,
    nn.Flatten,
    nn.Unflatten,
    nn.Identity,
    nn.Dropout,
)
