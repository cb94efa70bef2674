"""The vectorised cohort trainer: many clients of one architecture trained at once, as
stacked parameters (the step itself is greenfl.clients.stacked), for the models whose
training-mode forward is stateless; and ``auto_trainer``, which picks it or the sequential
trainer for a run.

It reproduces the sequential trainer step for step: each client sees the same batches in the
same order (``client_seed`` / ``batch_order``), a partial last batch averages its loss over
its real samples only, and a client with fewer steps simply stops moving. In bf16 / fp16
(``FitInstructions.precision``) both run the forward under torch.autocast, and fp16 keeps
a loss scale per client (greenfl.clients.precision): a cohort shares one precision, as the
in-process transport groups it."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn

from greenfl.clients.stacked import layout, train_chunk
from greenfl.clients.trainer import (
    ClientTrainer,
    SequentialTrainer,
    TrainProgress,
    TrainResult,
    dp_sgd_requested,
)
from greenfl.core.errors import ConfigError
from greenfl.core.messages import FitInstructions
from greenfl.data.base import FederatedDataset
from greenfl.models.reference import BasicBlock

log = logging.getLogger(__name__)


# Modules whose training-mode forward is deterministic and stateless: the vectorised step
# equals the sequential one for any model built only of these.
_STATELESS = (
    nn.Sequential,
    nn.Linear,
    nn.Bilinear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Flatten,
    nn.Unflatten,
    nn.Identity,
    nn.ReLU,
    nn.LeakyReLU,
    nn.GELU,
    nn.Tanh,
    nn.Sigmoid,
    nn.SiLU,
    nn.ELU,
    nn.Softplus,
    nn.LayerNorm,
    nn.GroupNorm,
    BasicBlock,  # convs, GroupNorm, ReLU and a residual add
)


# Memory one chunk of the cohort may use for stacked parameters (x4: parameters, gradients,
# FedProx anchor, momentum) and activations. 1,000 clients of a 60-64-10 MLP use ~20 MB.
CHUNK_BUDGET_BYTES = 512 * 2**20


def unsupported_reason(model: nn.Module) -> str | None:
    """Why the vectorised trainer cannot reproduce this model's sequential training, or None.

    Buffers (batch norm's running statistics) are updated in place by each client's forward,
    which a batched forward cannot do per client; dropout draws different random numbers
    than a client-by-client run would. Unknown module types are refused rather than guessed."""
    if any(True for _ in model.buffers()):
        return "the model has buffers (e.g. batch norm running statistics)"
    for name, mod in model.named_modules():
        if not isinstance(mod, _STATELESS):
            return f"module {name or '(root)'} ({type(mod).__name__}) is not known to be stateless"
    params = list(model.parameters())
    if not params:
        return "the model has no parameters"
    if any(p.dtype != torch.float32 for p in params):
        return "the model's parameters are not all float32"
    return None


class VectorisedTrainer:
    """Trains a cohort as stacked parameters; results equal SequentialTrainer's (to float32
    rounding: batched and per-client matmuls sum in different orders)."""

    name = "vectorised"

    def __init__(self, chunk_budget_bytes: int = CHUNK_BUDGET_BYTES) -> None:
        # torch's threads are the run's (engine.threads, set once for every trainer and
        # evaluator by greenfl.engine.session), not this trainer's.
        self.chunk_budget_bytes = chunk_budget_bytes

    def chunk_size(self, model: nn.Module, sample_shape: tuple[int, ...], batch: int) -> int:
        """Clients per chunk so that parameters and activations stay within the budget."""
        numel = sum(p.numel() for p in model.parameters())
        per_client = 4 * (4 * numel + 3 * batch * activation_numel(model, sample_shape))
        return max(1, self.chunk_budget_bytes // per_client)

    def train(
        self,
        model: nn.Module,
        global_params: torch.Tensor,
        dataset: FederatedDataset,
        cohort: Sequence[int],
        instructions: FitInstructions,
        round_idx: int,
        seed: int,
        progress: TrainProgress | None = None,
    ) -> list[TrainResult]:
        if dp_sgd_requested(instructions):
            # DP-SGD needs per-sample clipping and Poisson batches, which the stacked step
            # does not do: the sequential trainer's Opacus path trains these clients.
            return SequentialTrainer().train(
                model, global_params, dataset, cohort, instructions, round_idx, seed, progress
            )
        reason = unsupported_reason(model)
        if reason is not None:
            raise ValueError(f"vectorised trainer: {reason}; use engine.trainer = 'sequential'")
        if not len(cohort):
            return []
        size = self.chunk_size(model, tuple(dataset.input_shape), instructions.batch_size)
        by_id: dict[int, TrainResult] = {}
        done = steps = 0

        def on_step(finished: int, taken: int) -> None:
            if progress is not None:
                progress(done + finished, steps + taken)

        for start in range(0, len(cohort), size):
            chunk = layout(dataset, cohort[start : start + size], instructions, round_idx, seed)
            for r in train_chunk(model, global_params, chunk, instructions, on_step):
                by_id[r.client_id] = r
                steps += r.steps
            done = len(by_id)
        return [by_id[int(cid)] for cid in cohort]


def activation_numel(model: nn.Module, sample_shape: tuple[int, ...]) -> int:
    """Elements every leaf module outputs for one sample: what a batched forward keeps for
    its backward, per sample."""
    total = 0

    def hook(_m: nn.Module, _i: object, out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel()

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.no_grad():
            model(torch.zeros(1, *sample_shape))
    finally:
        for h in handles:
            h.remove()
    return max(total, 1)


# Below this many clients a round, batching gains little over the per-client loop.
MIN_AUTO_COHORT = 8


# Above this size each client's own step keeps the cores busy, so batching clients saves no
# dispatch overhead and only multiplies the weights' memory (measured in BENCHMARKS.md, W4).
MAX_AUTO_PARAMS = 1_000_000


def auto_trainer(choice: str, model: nn.Module, clients_per_round: int) -> ClientTrainer:
    """The trainer for ``engine.trainer``: ``sequential``, ``vectorised`` (an error if the
    model cannot be vectorised exactly) or ``auto``: vectorised when the model is supported
    and small (at most MAX_AUTO_PARAMS parameters) and at least MIN_AUTO_COHORT clients
    train per round, else sequential."""
    reason = unsupported_reason(model)
    if choice == "vectorised":
        if reason is not None:
            raise ConfigError(
                f"engine.trainer = 'vectorised': {reason}; use 'sequential' or 'auto'"
            )
        return VectorisedTrainer()
    params = sum(p.numel() for p in model.parameters())
    if choice == "auto" and reason is None:
        if clients_per_round < MIN_AUTO_COHORT:
            reason = f"fewer than {MIN_AUTO_COHORT} clients train per round"
        elif params > MAX_AUTO_PARAMS:
            reason = (
                f"the model has {params:,} parameters (> {MAX_AUTO_PARAMS:,}): each client's "
                "step already keeps the cores busy"
            )
        else:
            return VectorisedTrainer()
    if choice == "auto":
        why = reason
        log.info("engine.trainer = 'auto' picked the sequential trainer: %s", why)
    return SequentialTrainer()
