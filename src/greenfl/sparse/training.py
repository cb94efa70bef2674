"""The model a client trains under a mask: its forward multiplies every prunable tensor
by its 0/1 mask. A pruned weight then gets a gradient of exactly zero, and since it starts
at zero (the server sends the masked model) it stays exactly zero under SGD, momentum and
FedProx's proximal term: the client trains only the kept weights. The kernels are the
dense ones: the multiply saves no FLOPs (docs/submodels.md, "Sparse training")."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from greenfl.sparse.layout import PrunableLayout


class MaskedModule(nn.Module):
    """``inner`` with its pruned weights held at zero. Its parameters are ``inner``'s, in
    the same order (named ``inner.<name>``): the flat vector is the same."""

    def __init__(self, inner: nn.Module, layout: PrunableLayout) -> None:
        super().__init__()
        self.inner = inner
        self.layout = layout
        # a plain dict, not buffers: the masks are not parameters of the model
        self._masks: dict[str, torch.Tensor] = {}

    def set_mask(self, mask: torch.Tensor) -> None:
        """The flat mask (True: kept) the forward applies from now on."""
        if mask.numel() != self.layout.numel:
            raise ValueError(f"a mask of {mask.numel()} for a model of {self.layout.numel}")
        self._masks = {
            s.name: mask[s.offset : s.end].view(s.shape).to(torch.float32)
            for s in self.layout.prunable
            if not bool(mask[s.offset : s.end].all())
        }

    def forward(self, *args: Any) -> Any:
        if not self._masks:
            return self.inner(*args)
        named = dict(self.inner.named_parameters())
        masked = {name: named[name] * m for name, m in self._masks.items()}
        return functional_call(self.inner, masked, args)
