"""FLOPs of local training, counted from a real forward and backward pass of the model."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

# The batch FLOPs are counted on. Every counted operator (matmul, convolution, the LSTM's
# gates) costs the same per sample whatever the batch, so a larger batch gives the same
# per-sample count, only after allocating it (train.batch_size = 1e8 would ask for 256 TB).
PROBE_BATCH_MAX = 64


class _FlopCounter(TorchDispatchMode):
    """Sums torch's own per-operator FLOP formulas (the registry FlopCounterMode uses: matmuls
    and convolutions, forward and backward) over every aten op that runs inside it.

    Not FlopCounterMode itself: entering any stock dispatch mode imports torch._dynamo on
    first use (about a second of start-up that a run otherwise never needs)."""

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # no dynamo wrapper around __torch_dispatch__: nothing here compiles

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        count = flop_registry.get(func._overloadpacket)
        if count is not None:
            self.flops += int(count(*args, **kwargs, out_val=out))
        return out


class FlopCounter(_FlopCounter):
    """The counter as a context manager for code greenfl does not run itself (a Flower
    ClientApp's training, a server's evaluation): ``with FlopCounter() as c: ...; c.flops``.
    Counts matmuls and convolutions; the fused CPU LSTM op is not in torch's registry, so
    an LSTM's FLOPs must come from ``lstm_training_flops`` or the app."""


def training_flops_per_sample(
    model: nn.Module, input_shape: tuple[int, ...], num_classes: int, batch_size: int = 16
) -> float:
    """FLOPs of one forward+backward pass per sample, as torch's FLOP formulas count them on
    a real batch (matmuls and convolutions; elementwise ops are negligible). A model whose
    first module is an embedding gets token ids; any other, float features."""
    return _counted_flops_per_sample(model, input_shape, num_classes, batch_size, backward=True)


def forward_flops_per_sample(
    model: nn.Module, input_shape: tuple[int, ...], num_classes: int, batch_size: int = 16
) -> float:
    """FLOPs of one forward pass (evaluation) per sample, counted as the training pass is."""
    return _counted_flops_per_sample(model, input_shape, num_classes, batch_size, backward=False)


def _counted_flops_per_sample(
    model: nn.Module,
    input_shape: tuple[int, ...],
    num_classes: int,
    batch_size: int,
    backward: bool,
) -> float:
    batch_size = max(1, min(batch_size, PROBE_BATCH_MAX))
    x = _example_batch(model, input_shape, batch_size)
    y = torch.randint(0, num_classes, (batch_size,))
    # A copy so that counting never touches the caller's gradients.
    probe = copy.deepcopy(model)
    steps: list[tuple[nn.LSTM, int]] = []
    hooks = [
        m.register_forward_hook(lambda mod, args, _out: steps.append((mod, _seq_len(mod, args))))
        for m in probe.modules()
        if isinstance(m, nn.LSTM)
    ]
    with _FlopCounter() as counter:
        if backward:
            nn.functional.cross_entropy(probe(x), y).backward()
        else:
            with torch.no_grad():
                probe(x)
    for h in hooks:
        h.remove()
    # torch's registry has no formula for the fused aten LSTM op that runs on CPU, so those
    # FLOPs are counted here from the layer sizes (training is 3x the forward pass).
    lstm_flops = sum(lstm_training_flops(mod, seq_len) for mod, seq_len in steps)
    if not backward:
        lstm_flops //= 3
    return (counter.flops + lstm_flops * batch_size) / batch_size


def lstm_training_flops(lstm: nn.LSTM, seq_len: int) -> int:
    """Training FLOPs per sample of an LSTM over ``seq_len`` steps: each step of each layer
    multiplies its input and its previous hidden state into four gates, 2 * 4H * (I + H)
    FLOPs forward; the backward pass costs twice that (input and weight gradients), as for
    any matmul. Gate nonlinearities are elementwise and left out, as everywhere."""
    if lstm.proj_size:
        raise ValueError("FLOP count of a projected LSTM (proj_size > 0) is not supported")
    directions = 2 if lstm.bidirectional else 1
    per_step = 0
    in_size = lstm.input_size
    for _ in range(lstm.num_layers):
        per_step += directions * 2 * 4 * lstm.hidden_size * (in_size + lstm.hidden_size)
        in_size = lstm.hidden_size * directions
    return 3 * seq_len * per_step


def _seq_len(lstm: nn.LSTM, args: tuple) -> int:
    data = args[0]
    if data.dim() == 2:  # unbatched (seq, features)
        return int(data.shape[0])
    return int(data.shape[1] if lstm.batch_first else data.shape[0])


def _example_batch(model: nn.Module, input_shape: tuple[int, ...], batch_size: int) -> torch.Tensor:
    first = next((m for m in model.modules() if not any(True for _ in m.children())), None)
    if isinstance(first, nn.Embedding):
        return torch.randint(0, first.num_embeddings, (batch_size, *input_shape))
    return torch.randn(batch_size, *input_shape)
