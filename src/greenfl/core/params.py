"""Model parameters as one flat float32 vector: what strategies average, codecs compress
and transports send. ParamSpec maps it back to named tensors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class ParamSpec:
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @classmethod
    def of(cls, model: nn.Module) -> ParamSpec:
        named = list(model.named_parameters())
        return cls(tuple(n for n, _ in named), tuple(tuple(p.shape) for _, p in named))

    @property
    def numel(self) -> int:
        return int(sum(int(np.prod(s)) for s in self.shapes))

    def split(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        out, i = {}, 0
        for name, shape in zip(self.names, self.shapes, strict=True):
            n = int(np.prod(shape))
            out[name] = flat[i : i + n].view(shape)
            i += n
        return out


def get_flat(model: nn.Module) -> torch.Tensor:
    return nn.utils.parameters_to_vector(model.parameters()).detach().clone()


def set_flat(model: nn.Module, flat: torch.Tensor) -> None:
    """Copies ``flat`` into the model's parameters. A copy, not torch's
    ``vector_to_parameters``, which makes the parameters views of ``flat``: local training
    would then write into the caller's global vector and every delta would come out zero."""
    with torch.no_grad():
        i = 0
        for p in model.parameters():
            n = p.numel()
            p.copy_(flat[i : i + n].view_as(p))
            i += n
        if i != flat.numel():
            raise ValueError(f"parameter vector has {flat.numel()} elements, the model {i}")


def to_bytes(flat: torch.Tensor) -> bytes:
    """The wire form of a parameter vector: little-endian float32."""
    return flat.detach().to(torch.float32).numpy().astype("<f4", copy=False).tobytes()


def from_bytes(payload: bytes) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(payload, dtype="<f4").copy())
