"""The slice plan of a feed-forward ``nn.Sequential``: the MLP, the CNNs (``cnn``,
``femnist_cnn``, ``cifar_cnn``) and ResNet-20 (its residual blocks included).

The walk follows the forward pass and carries the width of the current activation (the
features of a linear layer, the channels of a conv): every linear or conv layer keeps the
units the previous one kept as its inputs and keeps ``units_at(out, width)`` outputs; the
last parametrised layer (the class layer) keeps all of its outputs, and the first one all
of its inputs. A flatten after a conv lays channels out one after another, so the first c
channels of C are the first c x (features / C) features of the linear layer after it."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from greenfl.core.errors import ConfigError
from greenfl.models.layers import UNIT_PRESERVING
from greenfl.models.reference import BasicBlock
from greenfl.submodel.layers import (
    Narrowed,
    narrow_batch_norm,
    narrow_conv,
    narrow_group_norm,
    narrow_linear,
)
from greenfl.submodel.widths import units_at


@dataclass
class _Width:
    """Units of the current activation: ``kept`` of ``full`` (None: the model's input,
    which never shrinks)."""

    kept: int | None
    full: int | None


class SequentialPlan:
    """Walks one Sequential model and collects the narrowed layers by qualified name."""

    def __init__(self, model: nn.Sequential, width: float) -> None:
        self.width = width
        self.replaced: dict[str, Narrowed] = {}
        leaves = [m for m in model.modules() if not list(m.children())]
        with_params = [m for m in leaves if any(True for _ in m.parameters(recurse=False))]
        if not with_params:
            raise ConfigError("the model has no parameters to slice")
        self.output = with_params[-1]
        self._walk_sequence("", model, _Width(None, None))

    def _walk_sequence(self, prefix: str, seq: nn.Sequential, width: _Width) -> _Width:
        for name, child in seq.named_children():
            width = self._walk(f"{prefix}{name}", child, width)
        return width

    def _walk(self, name: str, layer: nn.Module, width: _Width) -> _Width:
        if isinstance(layer, nn.Sequential):
            return self._walk_sequence(f"{name}.", layer, width)
        if isinstance(layer, BasicBlock):
            return self._block(name, layer, width)
        if isinstance(layer, nn.Linear):
            return self._linear(name, layer, width)
        if isinstance(layer, nn.Conv2d):
            return self._conv(name, layer, width)
        if isinstance(layer, nn.GroupNorm):
            return self._norm(name, layer, layer.num_channels, width)
        if isinstance(layer, nn.BatchNorm2d):
            return self._norm(name, layer, layer.num_features, width)
        if isinstance(layer, UNIT_PRESERVING):
            return width
        raise ConfigError(
            f"cannot slice layer {name!r} ({type(layer).__name__}): sub-models know linear, "
            "conv, GroupNorm/BatchNorm, LSTM and parameter-free activation/pooling layers"
        )

    def _outputs(self, layer: nn.Module, full_out: int) -> int:
        return full_out if layer is self.output else units_at(full_out, self.width)

    def _linear(self, name: str, layer: nn.Linear, width: _Width) -> _Width:
        keep_in = _inputs_kept(name, layer.in_features, width)
        keep_out = self._outputs(layer, layer.out_features)
        self.replaced[name] = narrow_linear(layer, keep_in, keep_out)
        return _Width(keep_out, layer.out_features)

    def _conv(self, name: str, layer: nn.Conv2d, width: _Width) -> _Width:
        if width.full is not None and layer.in_channels != width.full:
            raise ConfigError(
                f"layer {name!r} takes {layer.in_channels} channels after {width.full}"
            )
        keep_in = layer.in_channels if width.kept is None else width.kept
        keep_out = self._outputs(layer, layer.out_channels)
        self.replaced[name] = narrow_conv(layer, keep_in, keep_out)
        return _Width(keep_out, layer.out_channels)

    def _norm(
        self, name: str, layer: nn.GroupNorm | nn.BatchNorm2d, channels: int, width: _Width
    ) -> _Width:
        if width.full is None or width.kept is None:
            return width  # normalising the input itself: it never shrinks
        if channels != width.full:
            raise ConfigError(f"layer {name!r} normalises {channels} channels after {width.full}")
        if isinstance(layer, nn.GroupNorm):
            self.replaced[name] = narrow_group_norm(layer, width.kept)
        else:
            self.replaced[name] = narrow_batch_norm(layer, width.kept)
        return width

    def _block(self, name: str, block: BasicBlock, width: _Width) -> _Width:
        inner = self._walk(f"{name}.conv1", block.conv1, width)
        inner = self._walk(f"{name}.norm1", block.norm1, inner)
        inner = self._walk(f"{name}.conv2", block.conv2, inner)
        inner = self._walk(f"{name}.norm2", block.norm2, inner)
        side = self._walk(f"{name}.shortcut", block.shortcut, width)
        if side != inner:
            # An identity shortcut adds the block's input to its output: both must be cut
            # alike, which they are when the block keeps its width (ceil is the same).
            raise ConfigError(f"block {name!r}: shortcut keeps {side.kept}, body {inner.kept}")
        return inner


def _inputs_kept(name: str, in_features: int, width: _Width) -> int:
    if width.kept is None or width.full is None:
        return in_features
    if in_features == width.full:
        return width.kept
    if in_features % width.full == 0:
        # After a flatten of (C, H, W): channel-major, so the first kept channels are the
        # first kept x H x W features.
        return width.kept * (in_features // width.full)
    raise ConfigError(f"layer {name!r} takes {in_features} features after {width.full} units")


def plan_sequential(model: nn.Module, width: float) -> dict[str, Narrowed]:
    if not isinstance(model, nn.Sequential):
        raise ConfigError(f"expected an nn.Sequential model, got {type(model).__name__}")
    return SequentialPlan(model, width).replaced
