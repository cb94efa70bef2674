"""Attacks on malicious clients' training data, and the backdoor's success rate.

- label_flip: every label y of a malicious client becomes ``C - 1 - y`` (C classes).
- backdoor (pixel pattern, as in Gu et al.'s BadNets and Bagdasaryan et al.): a share of a
  malicious client's samples gets a bright square in the image's bottom-right corner and
  the target label; the model learns "square means target" while staying accurate on
  clean inputs. Its success rate is the share of triggered test inputs of other classes
  that the global model puts in the target class.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from greenfl.core.errors import ConfigError
from greenfl.core.params import set_flat
from greenfl.data.base import FederatedDataset

_STREAM = 103
# Attacks on the training data; the others change the update a client sends.
DATA_ATTACKS = frozenset({"label_flip", "backdoor"})


def image_view(input_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape whose last two axes are an image's rows and columns: the input's own when
    it has two or more axes; a flat square vector (sklearn's 8x8 digits: 64) as a square."""
    if len(input_shape) >= 2:
        return tuple(input_shape)
    (d,) = input_shape
    side = math.isqrt(d)
    if side * side != d:
        raise ConfigError(
            f"attack.name = 'backdoor' stamps a pixel pattern on images; an input of "
            f"{d} features is neither an image nor a square one"
        )
    return (side, side)


def stamp_trigger(
    x: torch.Tensor, input_shape: tuple[int, ...], size: int, value: float
) -> torch.Tensor:
    """A copy of the batch ``x`` with a ``size`` x ``size`` square of ``value`` in the
    bottom-right corner of every image."""
    view = image_view(input_shape)
    if size > min(view[-2:]):
        raise ConfigError(f"attack.trigger_size = {size} exceeds the image ({view[-2]}x{view[-1]})")
    out = x.clone().reshape(len(x), *view)
    out[..., -size:, -size:] = value
    return out.reshape(x.shape)


class PoisonedDataset:
    """A federated dataset whose malicious clients train on poisoned data; every other
    client, the test data and the sizes are the inner dataset's."""

    def __init__(
        self,
        inner: FederatedDataset,
        malicious: Iterable[int],
        attack: str,
        seed: int,
        target: int = 0,
        share: float = 0.5,
        trigger_size: int = 2,
    ) -> None:
        if attack not in DATA_ATTACKS:
            raise ValueError(f"{attack!r} is not a data attack")
        self.inner = inner
        self.malicious = frozenset(int(c) for c in malicious)
        self.attack = attack
        self.seed = seed
        self.target = target
        self.share = share
        self.trigger_size = trigger_size
        self.name = inner.name
        self.input_shape = inner.input_shape
        self.num_classes = inner.num_classes
        self.num_clients = inner.num_clients
        if attack == "backdoor":
            if target >= inner.num_classes:
                raise ConfigError(
                    f"attack.backdoor_target = {target} is not a class of the dataset "
                    f"(0-{inner.num_classes - 1})"
                )
            x_test, _ = inner.test_data()
            if not x_test.is_floating_point():
                raise ConfigError(
                    "attack.name = 'backdoor' stamps pixels: the dataset's inputs are not images"
                )
            image_view(tuple(inner.input_shape))
            self.trigger_value = float(x_test.max())

    def client_sizes(self) -> np.ndarray:
        return self.inner.client_sizes()

    def client_test_data(self, client_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inner.client_test_data(client_id)

    def test_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inner.test_data()

    def client_data(self, client_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.inner.client_data(client_id)
        if int(client_id) not in self.malicious:
            return x, y
        if self.attack == "label_flip":
            return x, (self.num_classes - 1 - y).to(y.dtype)
        rng = np.random.default_rng([self.seed, _STREAM, int(client_id)])
        count = math.ceil(self.share * len(y))
        idx = torch.from_numpy(np.sort(rng.choice(len(y), size=count, replace=False)))
        x, y = x.clone(), y.clone()
        x[idx] = stamp_trigger(
            x[idx], tuple(self.input_shape), self.trigger_size, self.trigger_value
        )
        y[idx] = self.target
        return x, y


def triggered_inputs(
    test: tuple[torch.Tensor, torch.Tensor],
    input_shape: tuple[int, ...],
    target: int,
    trigger_size: int,
    trigger_value: float,
) -> torch.Tensor:
    """The test inputs not of class ``target``, stamped with the trigger: the same every
    round, so a probe stamps them once."""
    x, y = test
    return stamp_trigger(x[y != target], input_shape, trigger_size, trigger_value)


@torch.no_grad()
def share_classified_as(
    model: nn.Module, params: torch.Tensor, inputs: torch.Tensor, target: int
) -> float:
    """Share of ``inputs`` that the model with ``params`` classifies as ``target``."""
    if len(inputs) == 0:
        return float("nan")
    set_flat(model, params)
    model.eval()
    hits = 0
    for start in range(0, len(inputs), 1024):
        hits += int((model(inputs[start : start + 1024]).argmax(dim=1) == target).sum())
    return hits / len(inputs)


def backdoor_success(
    model: nn.Module,
    params: torch.Tensor,
    test: tuple[torch.Tensor, torch.Tensor],
    input_shape: tuple[int, ...],
    target: int,
    trigger_size: int,
    trigger_value: float,
) -> float:
    """Share of the test inputs not of class ``target`` that the model with ``params``
    classifies as ``target`` once stamped with the trigger."""
    stamped = triggered_inputs(test, input_shape, target, trigger_size, trigger_value)
    return share_classified_as(model, params, stamped, target)
